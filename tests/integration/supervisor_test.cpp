// The supervisor against a real broker: a worker killed or crashed comes
// back without touching the others, SIGHUP reloads (a broker added, a broken
// file refused, a changed service list swapped in under load), SIGTERM
// drains, and the sd_notify protocol a Type=notify unit relies on.
//
// Each test writes its own YAML and starts build/bin/sbusd itself (fork and
// exec), so that it can set NOTIFY_SOCKET and WATCHDOG_USEC and find the
// worker pids: the supervisor logs "worker for BROKER started, pid N" for
// each worker it forks. Measured figures are printed on stdout as
// "[figure] ...".
#include <amqp.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <rapidjson/document.h>

#include <algorithm>
#include <filesystem>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sbus/sender.hpp>

#include "harness.hpp"

extern char** environ;

using namespace std::chrono_literals;
using sbus_test::broker_port;
using sbus_test::broker_uri;
using sbus_test::kSecret;
using sbus_test::mapped_libraries;
using sbus_test::maps_library;
using sbus_test::RawAmqp;
using sbus_test::read_file;
using sbus_test::TempDir;
using sbus_test::wait_until;
using sbus_test::write_file;
using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

namespace {

long long ms_since(Clock::time_point start) {
  return duration_cast<milliseconds>(Clock::now() - start).count();
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// amqp://guest:guest@HOST:PORT/%2f
std::string uri_for(const std::string& host, int port) {
  return "amqp://guest:guest@" + host + ":" + std::to_string(port) + "/%2f";
}

// The URI as sbusd logs it: without the password.
std::string redacted(const std::string& host, int port) {
  return "amqp://guest@" + host + ":" + std::to_string(port) + "/%2f";
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

// The processes whose parent is `parent`, zombies left out. The kernel's
// /proc/PID/task/TID/children is not always built in; /proc/*/stat is.
std::set<pid_t> children_of(pid_t parent) {
  std::set<pid_t> children;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) throw std::runtime_error("cannot open /proc");
  while (dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    const std::string stat = read_file("/proc/" + std::string(entry->d_name) + "/stat");
    // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
    const std::size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 1));
    char state = 0;
    long ppid = 0;
    if (fields >> state >> ppid && ppid == parent && state != 'Z') children.insert(static_cast<pid_t>(pid));
  }
  ::closedir(proc);
  return children;
}

// A service line of the YAML: "math.add" is served by plugin math, every
// "test.*" by plugin test.
std::string service_yaml(const std::string& name) {
  const std::string plugin = name.substr(0, name.find('.'));
  return "  - name: " + name + "\n    plugin: " + plugin + "\n";
}

struct DaemonConfig {
  std::vector<std::string> brokers;  // empty: {broker_uri()}
  std::vector<std::string> services = {"math.add"};
  int drain_timeout_seconds = 10;
  std::vector<std::string> idempotent = {};  // services marked idempotent: true
  std::string extra_yaml = {};               // top-level settings
  std::string services_yaml = {};            // raw entries appended under services:
  std::string secret_file = {};              // empty: the Daemon's own secret file
};

// An sbusd child process with its config, secret and log in a TempDir.
// Signals, config rewrites and log reads come from the test's main thread.
class Daemon {
 public:
  explicit Daemon(DaemonConfig config = {}) : node_(sbus_test::unique_node()) {
    secret_file_ = sbus_test::write_secret(dir_.path());
    config_path_ = dir_.file("sbusd.yaml");
    log_path_ = dir_.file("sbusd.log");
    write_config(std::move(config));
  }

  ~Daemon() {
    if (running()) stop(15s);
  }

  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Rewrites the YAML (sbusd reads it at start and on SIGHUP).
  void write_config(DaemonConfig config) {
    if (config.brokers.empty()) config.brokers = {broker_uri()};
    config_ = config;
    std::string yaml = "node: " + node_ + "\nbrokers:\n";
    for (const std::string& broker : config.brokers) yaml += "  - " + broker + "\n";
    yaml += "secret_file: " + (config.secret_file.empty() ? secret_file_ : config.secret_file) + "\n";
    yaml += "state_dir: " + dir_.file("state") + "\n";
    yaml += "plugin_dir: " SBUS_BUILD_DIR "/plugins\n";
    yaml += "drain_timeout: " + std::to_string(config.drain_timeout_seconds) + "\n";
    yaml += config.extra_yaml;
    yaml += "services:\n";
    for (const std::string& service : config.services) {
      yaml += service_yaml(service);
      if (std::find(config.idempotent.begin(), config.idempotent.end(), service) != config.idempotent.end()) {
        yaml += "    idempotent: true\n";
      }
    }
    yaml += config.services_yaml;
    write_raw_config(yaml);
  }

  void write_raw_config(const std::string& yaml) {
    // Written aside and renamed: a reload never reads a half-written file.
    const std::string staged = config_path_ + ".new";
    write_file(staged, yaml);
    if (::rename(staged.c_str(), config_path_.c_str()) != 0) {
      throw std::runtime_error("cannot rename " + staged + ": " + std::strerror(errno));
    }
  }

  // Starts sbusd with `env` ("NAME=value") added to the test's environment,
  // minus any systemd variables the test itself may have inherited.
  void start(const std::vector<std::string>& env = {}, const std::vector<std::string>& extra_args = {}) {
    std::vector<std::string> args = {SBUS_BUILD_DIR "/bin/sbusd", "--config", config_path_};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    sbus_test::require_own_state_dir(args);
    std::vector<std::string> envs;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry = *e;
      const std::string name = entry.substr(0, entry.find('='));
      if (name == "NOTIFY_SOCKET" || name.rfind("WATCHDOG_", 0) == 0 || name.rfind("LISTEN_", 0) == 0) continue;
      envs.push_back(entry);
    }
    envs.insert(envs.end(), env.begin(), env.end());
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (std::string& entry : envs) envp.push_back(entry.data());
    envp.push_back(nullptr);

    const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log_fd < 0 || null_fd < 0) throw std::runtime_error("cannot open " + log_path_);
    const pid_t pid = ::fork();
    if (pid == 0) {
      // Only async-signal-safe calls: other test threads may hold locks.
      if (::dup2(null_fd, STDIN_FILENO) < 0 || ::dup2(log_fd, STDOUT_FILENO) < 0 || ::dup2(log_fd, STDERR_FILENO) < 0) {
        _exit(127);
      }
      ::close_range(3, ~0U, 0);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::signal(SIGPIPE, SIG_DFL);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // no orphan if the test process dies
      ::execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    ::close(log_fd);
    ::close(null_fd);
    if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
    pid_ = pid;
    exit_code_.reset();
  }

  // Waits until the supervisor logs that every broker's worker consumes.
  void wait_ready(milliseconds timeout = 20s) {
    const std::string line = "ready: " + std::to_string(config_.brokers.size()) + "/" +
                             std::to_string(config_.brokers.size()) + " brokers connected";
    const bool ready = wait_until([&] { return wait_exit(0ms) || log().find(line) != std::string::npos; }, timeout);
    if (exit_code_) {
      throw std::runtime_error("sbusd exited with " + std::to_string(*exit_code_) + " before it was ready; log:\n" +
                               log());
    }
    if (!ready) throw std::runtime_error("sbusd did not log '" + line + "' in time; log:\n" + log());
  }

  // The pid of the newest worker started for `redacted_broker`, from the
  // supervisor's "worker for BROKER started, pid N" lines; -1 if none.
  pid_t worker_pid(const std::string& redacted_broker) const {
    return sbus_test::worker_pid_in_log(log(), redacted_broker);
  }

  // True while `pid` is a live child of this sbusd.
  bool has_child(pid_t pid) const { return pid > 0 && children_of(pid_).count(pid) == 1; }
  std::set<pid_t> children() const { return children_of(pid_); }

  sbus::SenderOptions sender_options(std::string broker = {}) const {
    sbus::SenderOptions options;
    options.brokers = {broker.empty() ? broker_uri() : std::move(broker)};
    options.secret = kSecret;
    return options;
  }

  std::string address(const std::string& service) const { return node_ + "." + service; }
  std::string file(const std::string& name) const { return dir_.file(name); }
  const std::string& node() const { return node_; }
  const std::string& config_path() const { return config_path_; }
  const std::string& secret_file() const { return secret_file_; }
  std::string state_dir() const { return dir_.file("state"); }
  pid_t pid() const { return pid_; }
  std::string log() const { return read_file(log_path_); }
  std::size_t log_count(const std::string& needle) const { return count_of(log(), needle); }
  bool running() const { return pid_ > 0 && !exit_code_; }

  void signal(int signal) {
    if (running()) ::kill(pid_, signal);
  }

  std::optional<int> wait_exit(milliseconds timeout) {
    if (pid_ <= 0 || exit_code_) return exit_code_;
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      int status = 0;
      const pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        exit_code_ = decode_status(status);
        return exit_code_;
      }
      if (done < 0 && errno != EINTR) return std::nullopt;
      if (Clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(5ms);
    }
  }

  // SIGTERM, then SIGKILL after `grace`; the exit code (or 128 + signal).
  int stop(milliseconds grace = 15s) {
    if (pid_ <= 0) return -1;
    if (exit_code_) return *exit_code_;
    ::kill(pid_, SIGTERM);
    if (wait_exit(grace)) return *exit_code_;
    for (pid_t child : children_of(pid_)) ::kill(child, SIGKILL);
    ::kill(pid_, SIGKILL);
    wait_exit(10s);
    return exit_code_.value_or(-1);
  }

 private:
  TempDir dir_;
  std::string node_;
  std::string secret_file_;
  std::string config_path_;
  std::string log_path_;
  DaemonConfig config_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

// Calls `address` with `params` until one call succeeds or `timeout`
// passes; each attempt waits at most `attempt`. Answers with an error code
// and transport failures (no queue yet, a timeout) count as misses. Returns
// the first success, or nullopt.
std::optional<sbus::CallResult> call_until_ok(sbus::Sender& sender, const std::string& address,
                                              const std::string& params, milliseconds timeout, milliseconds attempt,
                                              std::string* last_problem = nullptr) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    try {
      sbus::CallResult result = sender.call(address, params, attempt);
      if (result.ok()) return result;
      if (last_problem != nullptr) *last_problem = result.error_code + ": " + result.message;
    } catch (const sbus::SenderError& e) {
      if (last_problem != nullptr) *last_problem = e.what();
      // A transport failure other than a timeout returns at once: do not spin.
      if (e.kind() != sbus::SenderError::Kind::kTimeout) std::this_thread::sleep_for(20ms);
    }
  }
  return std::nullopt;
}

// A thread calling math.add [i, 1] over and over through its own Sender,
// each call with a 5 s timeout, counting answers and failures (an error
// reply, a wrong sum or a SenderError) until stopped.
class CallLoop {
 public:
  CallLoop(sbus::SenderOptions options, std::string address)
      : thread_([this, options = std::move(options), address = std::move(address)] { run(options, address); }) {}

  ~CallLoop() { stop(); }

  CallLoop(const CallLoop&) = delete;
  CallLoop& operator=(const CallLoop&) = delete;

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  int ok() const { return ok_; }
  int failed() const { return failed_; }
  std::string failures() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return failures_;
  }

 private:
  void run(const sbus::SenderOptions& options, const std::string& address) {
    sbus::Sender sender(options);
    for (int i = 0; !stop_; ++i) {
      try {
        sbus::CallResult result = sender.call(address, "[" + std::to_string(i) + ",1]", 5s);
        if (result.ok() && result.message == std::to_string(i + 1)) {
          ++ok_;
          continue;
        }
        note("call " + std::to_string(i) + ": " + result.error_code + ": " + result.message);
      } catch (const sbus::SenderError& e) {
        note("call " + std::to_string(i) + ": " + e.what());
      }
    }
  }

  void note(const std::string& failure) {
    ++failed_;
    std::lock_guard<std::mutex> lock(mutex_);
    if (failed_ <= 5) failures_ += failure + "\n";
  }

  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0};
  std::atomic<int> failed_{0};
  mutable std::mutex mutex_;
  std::string failures_;
  std::thread thread_;
};

// A private RabbitMQ node of its own (scripts/broker), stopped on
// destruction whatever happened in between.
class PrivateBroker {
 public:
  PrivateBroker() {
    // user rabbitmq runs the node and must reach DIR through the TempDir.
    if (::chmod(dir_.path().c_str(), 0755) != 0) throw std::runtime_error("chmod " + dir_.path() + " failed");
    static std::atomic<int> counter{0};
    name_ = "sbus-sup-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
    node_dir_ = dir_.file("node");
    std::string failures;
    // free-port races with other users of the machine: try a few.
    for (int attempt = 0; attempt < 3 && port_ == 0; ++attempt) {
      auto free = sbus_test::run_program(script(), {"free-port"}, 10s);
      const int port = std::atoi(free.out.c_str());
      if (free.exit_code != 0 || port <= 0) {
        failures += "free-port: " + free.err;
        continue;
      }
      started_ = true;
      auto started = sbus_test::run_program(script(), {"start", name_, std::to_string(port), node_dir_}, 90s);
      if (started.exit_code == 0) {
        port_ = port;
      } else {
        failures += "start on port " + std::to_string(port) + ": " + started.out + started.err;
      }
    }
    if (port_ == 0) {
      stop();
      throw std::runtime_error("the second broker did not start:\n" + failures);
    }
  }

  ~PrivateBroker() { stop(); }

  PrivateBroker(const PrivateBroker&) = delete;
  PrivateBroker& operator=(const PrivateBroker&) = delete;

  int port() const { return port_; }

 private:
  static std::string script() { return SBUS_SOURCE_DIR "/scripts/broker"; }

  void stop() {
    if (!started_) return;
    started_ = false;
    sbus_test::run_program(script(), {"stop", name_, node_dir_}, 60s);
  }

  TempDir dir_;
  std::string name_;
  std::string node_dir_;
  int port_ = 0;
  bool started_ = false;
};

// Ready (unacked deliveries left out) and consumer counts of a queue, by a
// passive queue.declare on a connection of its own.
struct QueueCounts {
  std::uint32_t messages = 0;
  std::uint32_t consumers = 0;
};

QueueCounts queue_counts(RawAmqp& amqp, const std::string& queue) {
  amqp_queue_declare_ok_t* ok =
      amqp_queue_declare(amqp.get(), 1, amqp_cstring_bytes(queue.c_str()), 1, 0, 0, 0, amqp_empty_table);
  amqp.check("passive declare of " + queue);
  return {ok->message_count, ok->consumer_count};
}

// The datagrams sbusd sends to NOTIFY_SOCKET, collected by a thread, one
// entry per line ("READY=1", "STATUS=...").
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (fd_ < 0 || path_.size() >= sizeof(address.sun_path)) throw std::runtime_error("cannot make " + path_);
    std::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      ::close(fd_);
      throw std::runtime_error("cannot bind " + path_ + ": " + std::strerror(errno));
    }
    thread_ = std::thread([this] { run(); });
  }

  ~NotifySocket() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }

  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::string& path() const { return path_; }

  std::vector<std::string> lines() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }

  std::vector<Clock::time_point> watchdog_times() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return watchdogs_;
  }

  // The index of the first line equal to `line` (or starting with it, when
  // `prefix`) at or after `from`; -1 if none.
  long find(const std::string& line, std::size_t from = 0, bool prefix = false) const {
    const std::vector<std::string> all = lines();
    for (std::size_t i = from; i < all.size(); ++i) {
      if (prefix ? all[i].rfind(line, 0) == 0 : all[i] == line) return static_cast<long>(i);
    }
    return -1;
  }

  bool wait_for(const std::string& line, std::size_t from, milliseconds timeout) const {
    return wait_until([&] { return find(line, from) >= 0; }, timeout);
  }

 private:
  void run() {
    while (!stop_) {
      pollfd fd{fd_, POLLIN, 0};
      if (::poll(&fd, 1, 20) <= 0) continue;
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n <= 0) continue;
      const auto now = Clock::now();
      std::istringstream text(std::string(buffer, static_cast<std::size_t>(n)));
      std::lock_guard<std::mutex> lock(mutex_);
      for (std::string line; std::getline(text, line);) {
        if (line.empty()) continue;
        if (line == "WATCHDOG=1") watchdogs_.push_back(now);
        lines_.push_back(line);
      }
    }
  }

  std::string path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
  std::vector<Clock::time_point> watchdogs_;
  std::thread thread_;
};

}  // namespace

TEST_CASE("A worker killed with SIGKILL is back and serving within a second", "[supervisor][restart]") {
  Daemon sbusd;
  sbusd.start();
  sbusd.wait_ready();
  const pid_t worker = sbusd.worker_pid(redacted("127.0.0.1", broker_port()));
  REQUIRE(sbusd.has_child(worker));
  sbus::Sender sender(sbusd.sender_options());
  REQUIRE(sender.call(sbusd.address("math.add"), "[1,2]", 10s).message == "3");

  const auto killed = Clock::now();
  REQUIRE(::kill(worker, SIGKILL) == 0);
  // The calls wait in the node's queue while no worker consumes: short
  // attempts only bound how late a success is noticed.
  std::string problem;
  const auto answer = call_until_ok(sender, sbusd.address("math.add"), "[2,3]", 10s, 100ms, &problem);
  const auto recovery = ms_since(killed);
  std::cout << "[figure] SIGKILL of worker pid " << worker << " -> first math.add answered: " << recovery << " ms\n";
  INFO("recovery: " << recovery << " ms; last problem: " << problem << "\nlog:\n" << sbusd.log());
  REQUIRE(answer);
  CHECK(answer->message == "5");
  REQUIRE(recovery < 1000);

  const pid_t restarted = sbusd.worker_pid(redacted("127.0.0.1", broker_port()));
  CHECK(restarted != worker);
  CHECK(sbusd.has_child(restarted));
  CHECK(sbusd.log().find("(pid " + std::to_string(worker) + ") killed by signal 9") != std::string::npos);
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("The supervisor maps none of the libraries that serving needs, and a worker without TLS maps no OpenSSL",
          "[supervisor][memory]") {
  // Nor libxml2 until a body that only libxml2 reads (the end of this test).
  // test.so links libsbus.so (test.relay calls through sbus::Sender), and
  // the worker checks both kinds of token: neither needs libssl, libcrypto
  // or a shared rabbitmq-c, which only sbus-tls.so brings.
  Daemon sbusd({.brokers = {},
                .services = {"math.add", "test.echo", "test.relay"},
                .extra_yaml = "accept: [compat, hmac-sha256]\n"});
  sbusd.start();
  sbusd.wait_ready();
  const pid_t worker = sbusd.worker_pid(redacted("127.0.0.1", broker_port()));
  REQUIRE(sbusd.has_child(worker));

  sbus::SenderOptions compat = sbusd.sender_options();
  sbus::SenderOptions hmac = sbusd.sender_options();
  hmac.token = "hmac-sha256";
  CHECK(sbus::Sender(compat).call(sbusd.address("math.add"), "[1,2]", 10s).message == "3");
  CHECK(sbus::Sender(hmac).call(sbusd.address("math.add"), "[3,4]", 10s).message == "7");
  const std::string relay = R"({"address":")" + sbusd.address("math.add") + R"(","params":[40,2]})";
  CHECK(sbus::Sender(compat).call(sbusd.address("test.relay"), relay, 10s).message == "42");

  const std::set<std::string> supervisor_maps = mapped_libraries(sbusd.pid());
  const std::set<std::string> worker_maps = mapped_libraries(worker);
  INFO("worker maps: " << [&] {
    std::string names;
    for (const std::string& name : worker_maps) names += name + " ";
    return names;
  }());
  for (const char* library : {"sbusd-worker.so", "math.so", "test.so", "libsbus.so"}) {
    INFO(library);
    CHECK_FALSE(maps_library(supervisor_maps, library));
    CHECK(maps_library(worker_maps, library));
  }
  for (const char* library :
       {"librabbitmq.so", "libssl.so", "libcrypto.so", "sbus-tls.so", "libxml2.so", "libicuuc.so", "sbus-xml.so"}) {
    INFO(library);
    CHECK_FALSE(maps_library(supervisor_maps, library));
    CHECK_FALSE(maps_library(worker_maps, library));
  }

  // A call the fast reader declines (a comment in its id) is read by
  // libxml2, from sbus-xml.so, which that body loads.
  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  std::string body = sbus_test::py_call_body("xml-ab", kSecret, "math", "add", "[40,2]");
  body.replace(body.find("<id>xml-ab</id>"), 15, "<id>xml-<!-- declined -->ab</id>");
  raw.publish("py-servicebus", sbusd.node(), body, reply_queue, "c-xml");
  const std::optional<RawAmqp::Message> reply = raw.receive(10s);
  REQUIRE(reply.has_value());
  INFO("reply: " << reply->body);
  CHECK(reply->body.find("<id>xml-ab</id>") != std::string::npos);
  CHECK(reply->body.find("42") != std::string::npos);
  CHECK(reply->body.find("status=\"error\"") == std::string::npos);
  const std::set<std::string> after = mapped_libraries(worker);
  CHECK(maps_library(after, "sbus-xml.so"));
  CHECK(maps_library(after, "libxml2.so"));
  CHECK_FALSE(maps_library(mapped_libraries(sbusd.pid()), "libxml2.so"));
  CHECK(sbusd.stop() == 0);
}

namespace {

// A config in `dir` serving math.add on the tests' broker; its path.
std::string write_math_config(const TempDir& dir) {
  const std::string secret_file = sbus_test::write_secret(dir.path());
  const std::string config = dir.file("sbusd.yaml");
  write_file(config, "node: " + sbus_test::unique_node() + "\nbrokers: [" + broker_uri() +
                         "]\nsecret_file: " + secret_file + "\nstate_dir: " + dir.file("state") +
                         "\nplugin_dir: " SBUS_BUILD_DIR "/plugins\nservices:\n" + service_yaml("math.add"));
  return config;
}

}  // namespace

TEST_CASE("sbusd --check names an XML module that cannot be loaded", "[supervisor][memory]") {
  // The module is loaded on the first body that only libxml2 reads; the
  // check loads it at once, so that a broken install is named before then.
  TempDir dir;
  const std::string config = write_math_config(dir);
  const std::string output = dir.file("output");
  const std::string sbusd = SBUS_BUILD_DIR "/bin/sbusd --check --config " + config + " > " + output + " 2>&1";
  const int missing = std::system(("SBUS_XML_MODULE=" + dir.file("none.so") + " " + sbusd).c_str());
  REQUIRE(WIFEXITED(missing));
  CHECK(WEXITSTATUS(missing) == 1);
  const std::string text = read_file(output);
  INFO(text);
  CHECK(text.find("bodies that only libxml2 reads could not be read: the XML module sbus-xml.so cannot be loaded (" +
                  dir.file("none.so") + ": no such file)") != std::string::npos);
  const int found = std::system(sbusd.c_str());
  REQUIRE(WIFEXITED(found));
  INFO(read_file(output));
  CHECK(WEXITSTATUS(found) == 0);
}

TEST_CASE("sbusd without a loadable worker module refuses to start and says why", "[supervisor][memory]") {
  // A copy of sbusd in a tree of its own: no ../libexec/sbus beside it.
  TempDir tree;
  REQUIRE(::mkdir(tree.file("bin").c_str(), 0755) == 0);
  const std::string copy = tree.file("bin/sbusd");
  write_file(copy, read_file(SBUS_BUILD_DIR "/bin/sbusd"));
  REQUIRE(::chmod(copy.c_str(), 0755) == 0);
  TempDir dir;
  const std::string config = write_math_config(dir);
  const std::string output = dir.file("output");
  const int status = std::system((copy + " --config " + config + " > " + output + " 2>&1").c_str());
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  const std::string text = read_file(output);
  INFO(text);
  CHECK(text.find("cannot load the worker module " + tree.file("libexec/sbus/sbusd-worker.so")) != std::string::npos);
  CHECK(text.find("not started") != std::string::npos);

  // A module that is there but does not load: the check says why.
  REQUIRE(::mkdir(tree.file("libexec").c_str(), 0755) == 0);
  REQUIRE(::mkdir(tree.file("libexec/sbus").c_str(), 0755) == 0);
  write_file(tree.file("libexec/sbus/sbusd-worker.so"), "not a shared object\n");
  const int check = std::system((copy + " --check --config " + config + " > " + output + " 2>&1").c_str());
  REQUIRE(WIFEXITED(check));
  CHECK(WEXITSTATUS(check) == 1);
  const std::string checked = read_file(output);
  INFO(checked);
  CHECK(checked.find("cannot load the worker module " + tree.file("libexec/sbus/sbusd-worker.so") + ": ") !=
        std::string::npos);
  CHECK(checked.find("plugin check") == std::string::npos);
}

TEST_CASE("A call to an idempotent service whose worker died is run again, up to max_retries times",
          "[supervisor][restart][crash]") {
  Daemon sbusd({.brokers = {},
                .services = {"math.add", "test.crash"},
                .drain_timeout_seconds = 10,
                .idempotent = {"test.crash"},
                .extra_yaml = "max_retries: 1\n"});
  sbusd.start();
  sbusd.wait_ready();

  sbus::Sender sender(sbusd.sender_options());
  std::optional<sbus::CallResult> crash;
  std::string transport_error;
  try {
    crash = sender.call(sbusd.address("test.crash"), "null", 20s);
  } catch (const sbus::SenderError& e) {
    transport_error = e.what();
  }
  INFO("log:\n" << sbusd.log());
  REQUIRE(transport_error == "");
  REQUIRE(crash);
  // Run, redelivered and run again (max_retries 1), then answered.
  CHECK(crash->error_code == "interrupted");
  CHECK(sbusd.log_count("killed by signal 11") == 2);
  REQUIRE(wait_until([&] { return sbusd.children().size() == 1; }, 10s));
  sbus::CallResult sum = sender.call(sbusd.address("math.add"), "[2,3]", 10s);
  CHECK(sum.message == "5");
}

TEST_CASE("A plugin that segfaults on a call brings its worker back without touching the other worker",
          "[supervisor][restart][crash]") {
  // Two entries for the same broker: two workers consuming the same queue.
  const std::string by_ip = redacted("127.0.0.1", broker_port());
  const std::string by_name = redacted("localhost", broker_port());
  Daemon sbusd({.brokers = {uri_for("127.0.0.1", broker_port()), uri_for("localhost", broker_port())},
                .services = {"math.add", "test.crash"}});
  sbusd.start();
  sbusd.wait_ready();
  const pid_t first_ip = sbusd.worker_pid(by_ip);
  const pid_t first_name = sbusd.worker_pid(by_name);
  REQUIRE(sbusd.has_child(first_ip));
  REQUIRE(sbusd.has_child(first_name));
  REQUIRE(first_ip != first_name);

  sbus::Sender sender(sbusd.sender_options());
  const auto called = Clock::now();
  std::optional<sbus::CallResult> crash;
  std::string transport_error;
  try {
    crash = sender.call(sbusd.address("test.crash"), "null", 10s);
  } catch (const sbus::SenderError& e) {
    transport_error = e.what();
  }
  const auto answered_after = ms_since(called);
  std::cout << "[figure] test.crash answered after " << answered_after
            << " ms: " << (crash ? crash->error_code + ": " + crash->message : transport_error) << "\n";
  INFO("log:\n" << sbusd.log());
  REQUIRE(transport_error == "");
  REQUIRE(crash);
  CHECK(crash->error_code == "interrupted");
  CHECK(answered_after < 5000);

  // Exactly one of the two is replaced, and its replacement consumes again.
  REQUIRE(wait_until(
      [&] {
        const pid_t ip = sbusd.worker_pid(by_ip);
        const pid_t name = sbusd.worker_pid(by_name);
        return sbusd.has_child(ip) && sbusd.has_child(name) && (ip != first_ip || name != first_name) &&
               sbusd.children().size() == 2;
      },
      10s));
  const pid_t now_ip = sbusd.worker_pid(by_ip);
  const pid_t now_name = sbusd.worker_pid(by_name);
  const int replaced = (now_ip != first_ip) + (now_name != first_name);
  const int survivors = sbusd.has_child(first_ip) + sbusd.has_child(first_name);
  std::cout << "[figure] crashed worker: " << (now_ip != first_ip ? by_ip : by_name) << " pid "
            << (now_ip != first_ip ? first_ip : first_name) << " -> pid " << (now_ip != first_ip ? now_ip : now_name)
            << "\n";
  CHECK(replaced == 1);
  CHECK(survivors == 1);
  CHECK(sbusd.log_count("killed by signal 11") == 1);
  CHECK(sbusd.log_count("died during 1 call(s)") == 1);

  for (int i = 0; i < 6; ++i) {
    sbus::CallResult sum = sender.call(sbusd.address("math.add"), "[" + std::to_string(i) + ",10]", 10s);
    CHECK(sum.ok());
    CHECK(sum.message == std::to_string(i + 10));
  }
  // Still the same two processes: nothing else crashed meanwhile.
  CHECK(sbusd.children() == std::set<pid_t>{now_ip, now_name});
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("Reloads that add and then remove a broker start and drain only that broker's worker",
          "[supervisor][reload]") {
  PrivateBroker second;
  const std::string uri1 = broker_uri();
  const std::string uri2 = uri_for("127.0.0.1", second.port());
  Daemon sbusd({.brokers = {uri1}});
  sbusd.start();
  sbusd.wait_ready();
  const pid_t worker1 = sbusd.worker_pid(redacted("127.0.0.1", broker_port()));
  REQUIRE(sbusd.has_child(worker1));

  CallLoop loop(sbusd.sender_options(uri1), sbusd.address("math.add"));
  REQUIRE(wait_until([&] { return loop.ok() + loop.failed() >= 10; }, 10s));

  sbusd.write_config({.brokers = {uri1, uri2}});
  const auto reloaded = Clock::now();
  sbusd.signal(SIGHUP);
  REQUIRE(wait_until([&] { return sbusd.log_count("reload: 1 broker(s) added, 0 removed") == 1; }, 10s));

  sbus::Sender sender2(sbusd.sender_options(uri2));
  std::string problem;
  // Until the new worker has declared the exchange and queue on the fresh
  // broker, calls through it fail or go nowhere.
  const auto answer = call_until_ok(sender2, sbusd.address("math.add"), "[20,22]", 15s, 100ms, &problem);
  const auto first_answer = ms_since(reloaded);
  const int ok_before_stop = loop.ok();
  REQUIRE(wait_until([&] { return loop.ok() >= ok_before_stop + 10; }, 10s));
  loop.stop();

  std::cout << "[figure] reload adding a broker: SIGHUP -> first answer through broker 2: " << first_answer
            << " ms; calls through broker 1 meanwhile: " << loop.ok() << " ok, " << loop.failed() << " failed\n";
  INFO("last problem through broker 2: " << problem << "\nfailures:\n" << loop.failures() << "log:\n" << sbusd.log());
  REQUIRE(answer);
  CHECK(answer->message == "42");
  CHECK(sender2.connected_broker() == redacted("127.0.0.1", second.port()));
  CHECK(loop.failed() == 0);
  CHECK(loop.ok() > 10);
  CHECK(sbusd.worker_pid(redacted("127.0.0.1", broker_port())) == worker1);
  CHECK(sbusd.has_child(worker1));
  const pid_t worker2 = sbusd.worker_pid(redacted("127.0.0.1", second.port()));
  CHECK(sbusd.has_child(worker2));
  CHECK(sbusd.children() == std::set<pid_t>{worker1, worker2});

  // And back: the second broker's worker drains, the first one stays.
  sbusd.write_config({.brokers = {uri1}});
  sbusd.signal(SIGHUP);
  CHECK(wait_until([&] { return sbusd.log_count("reload: 0 broker(s) added, 1 removed") == 1; }, 10s));
  CHECK(wait_until([&] { return !sbusd.has_child(worker2); }, 10s));
  CHECK(sbusd.children() == std::set<pid_t>{worker1});
  sbus::Sender sender1(sbusd.sender_options(uri1));
  CHECK(sender1.call(sbusd.address("math.add"), "[1,1]", 10s).message == "2");
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("A reload with a broken config changes nothing", "[supervisor][reload]") {
  Daemon sbusd;
  sbusd.start();
  sbusd.wait_ready();
  const pid_t worker = sbusd.worker_pid(redacted("127.0.0.1", broker_port()));
  REQUIRE(sbusd.has_child(worker));

  std::string expected_problem;
  SECTION("YAML that does not parse") {
    sbusd.write_raw_config("node: [unclosed\nbrokers: {{{ - : :\n\t\tservices: ]]\n");
    expected_problem = "YAML syntax error";
  }
  SECTION("YAML that parses but names a plugin that does not exist") {
    DaemonConfig config;
    config.services = {"math.add", "nosuchplugin.add"};
    sbusd.write_config(config);
    expected_problem = "nosuchplugin";
  }
  sbusd.signal(SIGHUP);
  REQUIRE(wait_until([&] { return sbusd.log_count("still running the previous config") == 1; }, 10s));
  const std::string log = sbusd.log();
  INFO("log:\n" << log);
  CHECK(log.find("reload failed") != std::string::npos);
  CHECK(log.find(expected_problem) != std::string::npos);
  CHECK(sbusd.worker_pid(redacted("127.0.0.1", broker_port())) == worker);
  // The throwaway process that checked the plugins is gone too.
  CHECK(wait_until([&] { return sbusd.children() == std::set<pid_t>{worker}; }, 5s));

  sbus::Sender sender(sbusd.sender_options());
  for (int i = 0; i < 3; ++i) {
    sbus::CallResult sum = sender.call(sbusd.address("math.add"), "[" + std::to_string(i) + ",1]", 10s);
    CHECK(sum.ok());
    CHECK(sum.message == std::to_string(i + 1));
  }
  CHECK(sbusd.running());
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("A reload whose new worker cannot start its services keeps the old worker serving", "[supervisor][reload]") {
  // test.record without `options: {file: ...}` loads fine, so the reload's
  // plugin check passes, but its start() throws: the new worker exits with
  // the fatal code. The old one must not be drained for it.
  Daemon sbusd;
  sbusd.start();
  sbusd.wait_ready();
  const pid_t worker = sbusd.worker_pid(redacted("127.0.0.1", broker_port()));
  REQUIRE(sbusd.has_child(worker));

  sbusd.write_config({.brokers = {}, .services = {"math.add", "test.record"}});
  sbusd.signal(SIGHUP);
  // Either the reload is refused up front, or the replacement fails.
  REQUIRE(wait_until(
      [&] { return sbusd.log_count("reload failed") == 1 || sbusd.log_count("fatal, not restarting") == 1; }, 10s));

  sbus::Sender sender(sbusd.sender_options());
  std::optional<sbus::CallResult> sum;
  std::string transport_error;
  try {
    sum = sender.call(sbusd.address("math.add"), "[2,2]", 3s);
  } catch (const sbus::SenderError& e) {
    transport_error = e.what();
  }
  INFO("log:\n" << sbusd.log());
  CHECK(transport_error == "");
  CHECK(sbusd.has_child(worker));
  REQUIRE(sum);
  CHECK(sum->message == "4");
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("A reload that changes the service list keeps a stream of calls answered with no failure",
          "[supervisor][reload]") {
  Daemon sbusd({.brokers = {}, .services = {"math.add"}});
  sbusd.start();
  sbusd.wait_ready();
  const pid_t old_worker = sbusd.worker_pid(redacted("127.0.0.1", broker_port()));
  REQUIRE(sbusd.has_child(old_worker));

  CallLoop loop(sbusd.sender_options(), sbusd.address("math.add"));
  REQUIRE(wait_until([&] { return loop.ok() + loop.failed() >= 10; }, 10s));

  sbusd.write_config({.brokers = {}, .services = {"math.add", "test.echo"}});
  const auto reloaded = Clock::now();
  const int ok_at_reload = loop.ok();
  sbusd.signal(SIGHUP);

  // The old worker answers unknown_service for test.echo until the new one
  // takes over.
  sbus::Sender sender(sbusd.sender_options());
  std::string problem;
  const auto echo = call_until_ok(sender, sbusd.address("test.echo"), R"({"hello":"reload"})", 20s, 1s, &problem);
  const auto echo_after = ms_since(reloaded);
  const bool old_gone = wait_until([&] { return !sbusd.has_child(old_worker); }, 20s);
  const auto old_gone_after = ms_since(reloaded);
  const int ok_at_swap = loop.ok();
  // Keep the stream going a little past the swap.
  CHECK(wait_until([&] { return loop.ok() >= ok_at_swap + 20; }, 10s));
  loop.stop();

  const pid_t new_worker = sbusd.worker_pid(redacted("127.0.0.1", broker_port()));
  std::cout << "[figure] reload changing services: SIGHUP -> test.echo answered " << echo_after
            << " ms, old worker exited " << old_gone_after << " ms; math.add stream: " << loop.ok() << " ok ("
            << ok_at_swap - ok_at_reload << " during the swap), " << loop.failed() << " failed\n";
  const std::string log = sbusd.log();
  INFO("last test.echo problem: " << problem << "\nfailures:\n" << loop.failures() << "log:\n" << log);
  REQUIRE(echo);
  CHECK(echo->message == R"({"hello":"reload"})");
  CHECK(old_gone);
  CHECK(new_worker != old_worker);
  CHECK(sbusd.children() == std::set<pid_t>{new_worker});
  // The old worker was told to stop only once the new one consumed.
  const std::string tag = "[worker " + redacted("127.0.0.1", broker_port()) + " pid=";
  const std::size_t new_connected = log.find(tag + std::to_string(new_worker) + "] connected to ");
  const std::size_t old_stopping = log.find(tag + std::to_string(old_worker) + "] signal 15: stopping");
  CHECK(new_connected != std::string::npos);
  CHECK(old_stopping != std::string::npos);
  CHECK(new_connected < old_stopping);
  REQUIRE(loop.failed() == 0);
  REQUIRE(ok_at_swap > ok_at_reload);
  REQUIRE(loop.ok() > 30);
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("SIGTERM lets a running call finish and leaves the calls not yet started in the broker",
          "[supervisor][stop]") {
  Daemon sbusd({.brokers = {}, .services = {"test.sleep", "test.echo"}, .drain_timeout_seconds = 10});
  sbusd.start();
  sbusd.wait_ready();

  RawAmqp caller;
  RawAmqp probe;
  const std::string reply_queue = caller.declare_reply_queue();
  auto publish = [&](const std::string& id, const std::string& service, const std::string& params) {
    caller.publish("py-servicebus", sbusd.node(), sbus_test::py_call_body(id, kSecret, "test", service, params),
                   reply_queue, id);
  };
  // A starts at once on test.sleep's thread; B, C and D wait behind it in
  // that service's queue in the worker: delivered, not started. The worker
  // reads its deliveries in order, so the echo's answer means it holds all four.
  publish("call-a", "sleep", "2");
  publish("call-b", "sleep", "0");
  publish("call-c", "sleep", "0");
  publish("call-d", "sleep", "0");
  publish("barrier", "echo", "0");
  auto barrier = caller.receive(10s);
  REQUIRE(barrier);
  REQUIRE(barrier->correlation_id == "barrier");
  CHECK(queue_counts(probe, sbusd.node()).messages == 0);

  const auto stopped = Clock::now();
  sbusd.signal(SIGTERM);
  auto answer = caller.receive(10s);
  const auto answered_after = ms_since(stopped);
  const auto code = sbusd.wait_exit(15s);
  const auto exited_after = ms_since(stopped);
  INFO("log:\n" << sbusd.log());
  REQUIRE(answer);
  CHECK(answer->correlation_id == "call-a");
  CHECK(answer->body.find("status=\"ok\"") != std::string::npos);
  CHECK(sbus_test::between(answer->body, "<message><![CDATA[", "]]>") == "2");
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(answered_after < 2500);

  // The broker requeues what the stopped worker held but never started.
  std::uint32_t left = 0;
  CHECK(wait_until([&] { return (left = queue_counts(probe, sbusd.node()).messages) >= 3; }, 5s));
  std::cout << "[figure] SIGTERM during test.sleep 2: call answered after " << answered_after << " ms, sbusd exited "
            << exited_after << " ms with " << *code << "; " << left << " calls left in the broker\n";
  CHECK(left == 3);
  CHECK(queue_counts(probe, sbusd.node()).consumers == 0);
  // None of B, C, D was answered.
  CHECK_FALSE(caller.receive(100ms));

  amqp_queue_delete(probe.get(), 1, amqp_cstring_bytes(sbusd.node().c_str()), 0, 0);
  probe.check("delete " + sbusd.node());
}

TEST_CASE("sd_notify messages arrive in order on the notify socket", "[supervisor][systemd]") {
  TempDir dir;
  NotifySocket notify(dir.file("notify"));
  Daemon sbusd({.brokers = {}, .services = {"math.add", "test.echo"}});
  sbusd.start({"NOTIFY_SOCKET=" + notify.path(), "WATCHDOG_USEC=1000000"});

  INFO("log:\n" << sbusd.log());
  REQUIRE(notify.wait_for("READY=1", 0, 20s));
  const long ready = notify.find("READY=1");
  const long first_status = notify.find("STATUS=", 0, true);
  CHECK(first_status >= 0);
  CHECK(first_status < ready);
  REQUIRE(wait_until([&] { return notify.find("STATUS=1/1 brokers connected, 2 services") >= 0; }, 5s));
  REQUIRE(wait_until([&] { return notify.watchdog_times().size() >= 3; }, 5s));

  const std::size_t before_reload = notify.lines().size();
  sbusd.signal(SIGHUP);
  REQUIRE(notify.wait_for("RELOADING=1", before_reload, 10s));
  const long reloading = notify.find("RELOADING=1", before_reload);
  REQUIRE(notify.wait_for("READY=1", reloading + 1, 10s));
  const long ready_again = notify.find("READY=1", reloading + 1);
  REQUIRE(wait_until([&] { return sbusd.log_count("reload: 0 broker(s) added") == 1; }, 5s));

  const std::size_t before_stop = notify.lines().size();
  sbusd.signal(SIGTERM);
  const auto code = sbusd.wait_exit(15s);
  REQUIRE(code);
  CHECK(*code == 0);
  // The socket thread may not have read the last datagrams yet.
  REQUIRE(notify.wait_for("STOPPING=1", before_stop, 2s));
  const long stopping = notify.find("STOPPING=1", before_stop);

  const std::vector<std::string> lines = notify.lines();
  std::ostringstream sequence;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i] == "WATCHDOG=1" && i > 0 && lines[i - 1] == "WATCHDOG=1") continue;
    sequence << "  " << i << ": " << lines[i] << "\n";
  }
  const auto watchdogs = notify.watchdog_times();
  long long longest_gap = 0;
  for (std::size_t i = 1; i < watchdogs.size(); ++i) {
    longest_gap =
        std::max<long long>(longest_gap, duration_cast<milliseconds>(watchdogs[i] - watchdogs[i - 1]).count());
  }
  std::cout << "[figure] sd_notify: " << lines.size() << " datagram lines, " << watchdogs.size()
            << " WATCHDOG=1 with WATCHDOG_USEC=1000000, longest gap " << longest_gap << " ms\n";
  INFO("sequence:\n" << sequence.str());
  CHECK(ready < reloading);
  CHECK(reloading < ready_again);
  CHECK(ready_again < stopping);
  // Nothing but READY=1 once at start, once after the reload.
  CHECK(count_of(sequence.str(), ": READY=1\n") == 2);
  CHECK(notify.find("RELOADING=1", static_cast<std::size_t>(reloading) + 1) == -1);
  // The interval is half of WATCHDOG_USEC; a gap near the full second would
  // get sbusd killed by systemd.
  CHECK(longest_gap < 800);
  const long stopping_status = notify.find("STATUS=", static_cast<std::size_t>(stopping), true);
  CHECK(stopping_status > stopping);
  CHECK(stopping_status >= 0);
  if (stopping_status >= 0) CHECK(lines[stopping_status].find(", stopping") != std::string::npos);
}

TEST_CASE(
    "A service whose start() throws is answered service_unavailable while the others serve, and READY and STATUS say "
    "so",
    "[supervisor][systemd][start]") {
  // test.record without `options: {file: ...}` throws in start().
  TempDir dir;
  NotifySocket notify(dir.file("notify"));
  Daemon sbusd({.brokers = {}, .services = {"math.add", "test.record", "test.echo"}});
  sbusd.start({"NOTIFY_SOCKET=" + notify.path()});
  INFO("log:\n" << sbusd.log());
  REQUIRE(notify.wait_for("READY=1", 0, 20s));
  const pid_t worker = sbusd.worker_pid(redacted("127.0.0.1", broker_port()));
  const std::string why = "service test.record: start failed: test.record needs options: {file: PATH}";
  REQUIRE(wait_until(
      [&] { return notify.find("STATUS=1/1 brokers connected, 3 services; unavailable: test.record: " + why) >= 0; },
      5s));
  CHECK(sbusd.log_count("service unavailable: test.record: " + why) == 1);

  sbus::Sender sender(sbusd.sender_options());
  // The others serve.
  CHECK(sender.call(sbusd.address("math.add"), "[2,3]", 5s).message == "5");
  CHECK(sender.call(sbusd.address("test.echo"), "[\"hi\"]", 5s).message == "[\"hi\"]");
  // A call to it is answered at once, naming why.
  const auto started = Clock::now();
  const sbus::CallResult refused = sender.call(sbusd.address("test.record"), "[1]", 10s);
  CHECK(Clock::now() - started < 2s);
  CHECK(refused.error_code == "service_unavailable");
  CHECK(refused.message == "test.record is unavailable: " + why);
  // A message to it is kept in the error queue with the reason, not lost.
  sender.send(sbusd.address("test.record"), "{\"n\":1}");
  std::vector<sbus::DeadLetter> letters;
  REQUIRE(wait_until([&] { return !(letters = sender.list_errors(sbusd.node())).empty(); }, 5s));
  CHECK(letters[0].header("x-sbus-service") == "test.record");
  CHECK(letters[0].header("x-sbus-error") == "service unavailable: " + why);
  // sbus stats shows it.
  const auto stats = sbus_test::run_cli(
      {"stats", sbusd.node(), "--broker", broker_uri(), "--secret-file", sbusd.secret_file(), "--timeout", "5"});
  CHECK(stats.exit_code == 0);
  CHECK(stats.out.find("test.record") != std::string::npos);
  CHECK(stats.out.find("UNAVAILABLE: " + why) != std::string::npos);
  // The worker was not restarted for it.
  CHECK(sbusd.worker_pid(redacted("127.0.0.1", broker_port())) == worker);
  CHECK(sbusd.has_child(worker));
  CHECK(sbusd.log_count("fatal") == 0);
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("sbusd --check --start runs each service's start() and names the one that throws",
          "[supervisor][check][start]") {
  Daemon sbusd({.brokers = {}, .services = {"math.add", "test.record"}});
  const auto loads = sbus_test::run_program(SBUS_BUILD_DIR "/bin/sbusd", {"--config", sbusd.config_path(), "--check"});
  // Loading alone finds nothing wrong.
  CHECK(loads.exit_code == 0);
  const auto starts =
      sbus_test::run_program(SBUS_BUILD_DIR "/bin/sbusd", {"--config", sbusd.config_path(), "--check", "--start"});
  INFO(starts.err);
  CHECK(starts.exit_code == 1);
  CHECK(starts.err.find(sbusd.config_path() + ":") != std::string::npos);
  CHECK(starts.err.find("services[1]: test.record: start failed: test.record needs options: {file: PATH}") !=
        std::string::npos);
  CHECK(starts.err.find("has 1 problem(s)") != std::string::npos);
  const auto misused =
      sbus_test::run_program(SBUS_BUILD_DIR "/bin/sbusd", {"--config", sbusd.config_path(), "--start"});
  CHECK(misused.exit_code == 2);
}

TEST_CASE("sbus stats shows the worker of every broker, its restarts and how the last run ended",
          "[supervisor][stats]") {
  PrivateBroker second;
  const std::string uri1 = broker_uri();
  const std::string uri2 = uri_for("127.0.0.1", second.port());
  Daemon sbusd({.brokers = {uri1, uri2}});
  sbusd.start();
  sbusd.wait_ready();
  const auto stats = [&] {
    return sbus_test::run_cli({"stats", sbusd.node(), "--broker", uri1, "--broker", uri2, "--secret-file",
                               sbusd.secret_file(), "--timeout", "5"});
  };
  auto both = stats();
  INFO("stdout:\n" << both.out << "stderr:\n" << both.err);
  CHECK(both.exit_code == 0);
  CHECK(both.out.find("via " + redacted("127.0.0.1", broker_port()) + ":") != std::string::npos);
  CHECK(both.out.find("via " + redacted("127.0.0.1", second.port()) + ":") != std::string::npos);
  CHECK(count_of(both.out, "0 restart(s)\n") == 2);

  // The second broker's worker dies: its counters start over, and stats say so.
  const pid_t worker2 = sbusd.worker_pid(redacted("127.0.0.1", second.port()));
  REQUIRE(worker2 > 0);
  REQUIRE(::kill(worker2, SIGKILL) == 0);
  REQUIRE(wait_until(
      [&] {
        const pid_t now = sbusd.worker_pid(redacted("127.0.0.1", second.port()));
        return now > 0 && now != worker2 &&
               stats().out.find("1 restart(s); the last run killed by signal 9") != std::string::npos;
      },
      15s));
  auto after = stats();
  INFO("after:\n" << after.out);
  CHECK(count_of(after.out, "0 restart(s)\n") == 1);
  CHECK(after.out.find("s ago: counters since then") != std::string::npos);
  CHECK(sbusd.stop() == 0);
}

namespace {

// A config for `node` with `services`, the test broker, the secret in
// `secret_file` and the state folder `state_dir`.
std::string agent_yaml(const std::string& node, const std::string& secret_file, const std::string& state_dir,
                       const std::vector<std::string>& services) {
  std::string yaml = "node: " + node + "\nbrokers:\n  - " + broker_uri() + "\nsecret_file: " + secret_file +
                     "\nstate_dir: " + state_dir + "\nplugin_dir: " SBUS_BUILD_DIR "/plugins\nservices:\n";
  for (const std::string& service : services) yaml += service_yaml(service);
  return yaml;
}

}  // namespace

TEST_CASE("Two agents of one node name with other services are told apart loudly, in the log and in stats",
          "[supervisor][node]") {
  Daemon first({.brokers = {}, .services = {"math.add", "test.echo"}});
  first.start();
  first.wait_ready();
  Daemon second;
  second.write_raw_config(
      agent_yaml(first.node(), second.secret_file(), second.state_dir(), {"math.add", "test.sleep"}));
  second.start();
  second.wait_ready();
  INFO("first:\n" << first.log() << "second:\n" << second.log());
  // Both learn of it: the newcomer from the answer, the first from the announcement.
  const std::string warning = "another agent serves node " + first.node() + " on this broker with other services";
  REQUIRE(wait_until([&] { return first.log_count(warning) == 1 && second.log_count(warning) == 1; }, 10s));
  CHECK(first.log_count("only there: test.sleep; only here: test.echo") == 1);
  CHECK(second.log_count("only there: test.echo; only here: test.sleep") == 1);

  const auto stats = sbus_test::run_cli(
      {"stats", first.node(), "--broker", broker_uri(), "--secret-file", first.secret_file(), "--timeout", "5"});
  CHECK(stats.exit_code == 0);
  CHECK(stats.out.find("another agent of this node: host ") != std::string::npos);
  CHECK(stats.out.find("OTHER SERVICES: only there: ") != std::string::npos);
  CHECK(second.stop() == 0);
  CHECK(first.stop() == 0);
}

TEST_CASE("Two agents of one node name with the same services share its calls, and both serve", "[supervisor][node]") {
  Daemon first({.brokers = {}, .services = {"math.add"}});
  first.start();
  first.wait_ready();
  Daemon second;
  second.write_raw_config(agent_yaml(first.node(), second.secret_file(), second.state_dir(), {"math.add"}));
  second.start();
  second.wait_ready();
  INFO("first:\n" << first.log() << "second:\n" << second.log());
  const std::string same = "another agent serves node " + first.node() + " on this broker with the same services";
  REQUIRE(wait_until([&] { return first.log_count(same) == 1 && second.log_count(same) == 1; }, 10s));
  CHECK(first.log_count("with other services") == 0);

  // The broker hands the calls round: each agent answers some, none fails.
  sbus::Sender sender(first.sender_options());
  for (int i = 0; i < 40; ++i)
    REQUIRE(sender.call(first.address("math.add"), "[" + std::to_string(i) + ",1]", 5s).message ==
            std::to_string(i + 1));
  const auto handled = [&](Daemon& agent) {
    sbus::SenderOptions options = agent.sender_options();
    rapidjson::Document stats;
    // sbus.stats reaches either agent: ask until this one's pid answers.
    for (int tries = 0; tries < 50; ++tries) {
      const auto result = sbus::Sender(options).call(first.node() + ".sbus.stats", "[]", 5s);
      stats.Parse(result.message.c_str());
      if (stats.IsObject() && stats["pid"].GetInt() == agent.worker_pid(redacted("127.0.0.1", broker_port()))) {
        return stats["services"]["math.add"]["handled"].GetUint64();
      }
    }
    return std::uint64_t{0};
  };
  const std::uint64_t by_first = handled(first);
  const std::uint64_t by_second = handled(second);
  std::cout << "[figure] 40 calls to two agents of one node: " << by_first << " and " << by_second << "\n";
  CHECK(by_first > 0);
  CHECK(by_second > 0);
  CHECK(by_first + by_second == 40);
  CHECK(second.stop() == 0);
  CHECK(first.stop() == 0);
}

TEST_CASE("SIGTERM with a stuck call exits at the drain timeout and answers that call `interrupted`",
          "[supervisor][stop][drain]") {
  TempDir marks;
  const std::string stopped_mark = marks.file("echo-stopped");
  Daemon sbusd({.brokers = {},
                .services = {"test.sleep", "math.add"},
                .drain_timeout_seconds = 5,
                .services_yaml =
                    "  - name: test.echo\n    plugin: test\n    options:\n      stop_file: " + stopped_mark + "\n"});
  sbusd.start();
  sbusd.wait_ready();

  RawAmqp caller;
  RawAmqp probe;
  const std::string reply_queue = caller.declare_reply_queue();
  caller.publish("py-servicebus", sbusd.node(), sbus_test::py_call_body("stuck", kSecret, "test", "sleep", "[3600]"),
                 reply_queue, "stuck");
  // Read in order: the sum's answer means the worker holds the stuck call.
  caller.publish("py-servicebus", sbusd.node(), sbus_test::py_call_body("barrier", kSecret, "math", "add", "[1,2]"),
                 reply_queue, "barrier");
  auto barrier = caller.receive(10s);
  REQUIRE(barrier);
  REQUIRE(barrier->correlation_id == "barrier");

  const auto stopped = Clock::now();
  sbusd.signal(SIGTERM);
  auto answer = caller.receive(12s);
  const auto answered_after = ms_since(stopped);
  const auto code = sbusd.wait_exit(15s);
  const auto exited_after = ms_since(stopped);
  std::cout << "[figure] SIGTERM with test.sleep [3600] running, drain_timeout 5: call answered after "
            << answered_after << " ms, sbusd exited after " << exited_after << " ms\n";
  INFO("log:\n" << sbusd.log());
  REQUIRE(answer);
  CHECK(answer->correlation_id == "stuck");
  CHECK(answer->body.find("interrupted") != std::string::npos);
  REQUIRE(code);
  CHECK(*code == 0);
  // At the drain timeout, not at the supervisor's KILL 5 s later.
  CHECK(exited_after >= 4500);
  CHECK(exited_after < 7500);
  CHECK(sbusd.log_count("did not stop in time: SIGKILL") == 0);
  CHECK(sbusd.log_count("killed by signal") == 0);
  // The services that were not stuck were stopped as usual.
  CHECK(::access(stopped_mark.c_str(), F_OK) == 0);
  // Answered and acked: nothing left to run again.
  CHECK(queue_counts(probe, sbusd.node()).messages == 0);
  amqp_queue_delete(probe.get(), 1, amqp_cstring_bytes(sbusd.node().c_str()), 0, 0);
  probe.check("delete " + sbusd.node());
}

TEST_CASE(
    "A call stuck in an idempotent service at the drain timeout is left to the broker and run again after "
    "the restart",
    "[supervisor][stop][drain]") {
  TempDir marks;
  const std::string mark = marks.file("stalled");
  DaemonConfig config{.brokers = {},
                      .services = {"math.add"},
                      .drain_timeout_seconds = 3,
                      .services_yaml =
                          "  - name: test.stall_once\n    plugin: test\n    idempotent: true\n"
                          "    options:\n      file: " +
                          mark + "\n"};
  Daemon sbusd(config);
  sbusd.start();
  sbusd.wait_ready();

  RawAmqp caller;
  const std::string reply_queue = caller.declare_reply_queue();
  caller.publish("py-servicebus", sbusd.node(),
                 sbus_test::py_call_body("stalled", kSecret, "test", "stall_once", "null"), reply_queue, "stalled");
  REQUIRE(wait_until([&] { return ::access(mark.c_str(), F_OK) == 0; }, 10s));

  const auto stopped = Clock::now();
  sbusd.signal(SIGTERM);
  const auto code = sbusd.wait_exit(15s);
  const auto exited_after = ms_since(stopped);
  INFO("log:\n" << sbusd.log());
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(exited_after < 5500);
  CHECK(sbusd.log_count("left to the broker for redelivery") == 1);
  CHECK_FALSE(caller.receive(200ms));

  // A new sbusd gets the call again from the broker and runs it.
  const auto restarted = Clock::now();
  sbusd.start();
  sbusd.wait_ready();
  auto answer = caller.receive(10s);
  std::cout << "[figure] idempotent call stuck at the drain timeout: sbusd exited after " << exited_after
            << " ms; run again and answered " << ms_since(restarted) << " ms after the restart\n";
  REQUIRE(answer);
  CHECK(answer->correlation_id == "stalled");
  CHECK(answer->body.find("status=\"ok\"") != std::string::npos);
  CHECK(sbus_test::between(answer->body, "<message><![CDATA[", "]]>") == "\"again\"");
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("A plugin that keeps crashing costs the other services a restart each time, then is switched off",
          "[supervisor][restart][crash]") {
  // crash_limit 6: enough crashes to see that no back-off builds up (the
  // fifth would otherwise wait 1.6 s).
  Daemon sbusd(
      {.brokers = {}, .services = {"math.add", "test.crash"}, .extra_yaml = "crash_limit: 6\ncrash_cooldown: 60\n"});
  sbusd.start();
  sbusd.wait_ready();
  sbus::Sender crasher(sbusd.sender_options());
  sbus::Sender adder(sbusd.sender_options());
  REQUIRE(adder.call(sbusd.address("math.add"), "[1,2]", 10s).message == "3");

  long long worst = 0;
  for (int i = 1; i <= 6; ++i) {
    const auto sent = Clock::now();
    sbus::CallResult crash = crasher.call(sbusd.address("test.crash"), "null", 20s);
    INFO("crash " << i << " log:\n" << sbusd.log());
    CHECK(crash.error_code == "interrupted");
    std::string problem;
    const auto sum = call_until_ok(adder, sbusd.address("math.add"), "[2,3]", 10s, 100ms, &problem);
    const auto recovery = ms_since(sent);
    worst = std::max(worst, recovery);
    std::cout << "[figure] crash " << i << " of test.crash -> math.add answered again after " << recovery << " ms\n";
    REQUIRE(sum);
    CHECK(sum->message == "5");
    CHECK(recovery < 1000);
  }
  std::cout << "[figure] slowest recovery over 6 crashes in a row: " << worst << " ms\n";
  CHECK(sbusd.log_count("killed by signal 11") == 6);
  CHECK(sbusd.log_count("restarting in 0 ms") == 6);

  // The sixth crash switched test.crash off: answered at once, no crash.
  const auto asked = Clock::now();
  sbus::CallResult off = crasher.call(sbusd.address("test.crash"), "null", 10s);
  const auto answered = ms_since(asked);
  std::cout << "[figure] switched-off test.crash answered " << off.error_code << " in " << answered
            << " ms: " << off.message << "\n";
  INFO("log:\n" << sbusd.log());
  CHECK(off.error_code == "service_unavailable");
  CHECK(off.message.find("switched off") != std::string::npos);
  CHECK(off.message.find("crashed the worker") != std::string::npos);
  CHECK(answered < 1000);
  CHECK(adder.call(sbusd.address("math.add"), "[4,5]", 10s).message == "9");
  CHECK(sbusd.log_count("killed by signal 11") == 6);
  CHECK(sbusd.log_count("switched off for") >= 1);
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("A worker whose broker is unreachable stops cleanly, and a worker killed by a signal is logged at error",
          "[supervisor][stop]") {
  SECTION("stopping a worker that never connected: exit 0, no crash") {
    sbus_test::DeadPort dead;
    Daemon sbusd({.brokers = {dead.uri()}, .services = {"math.add"}});
    sbusd.start();
    // It tried: the worker logs each failed connect.
    REQUIRE(wait_until([&] { return sbusd.log().find("reconnecting to") != std::string::npos; }, 10s));
    const auto stopped = Clock::now();
    const int code = sbusd.stop();
    INFO("log:\n" << sbusd.log());
    std::cout << "[figure] stop with the broker unreachable: exit " << code << " after " << ms_since(stopped)
              << " ms\n";
    CHECK(code == 0);
    CHECK(sbusd.log_count("killed by signal") == 0);
    CHECK(sbusd.log().find("] stopped") != std::string::npos);
  }
  SECTION("a worker killed while serving") {
    Daemon sbusd;
    sbusd.start();
    sbusd.wait_ready();
    const pid_t worker = sbusd.worker_pid(redacted("127.0.0.1", broker_port()));
    REQUIRE(::kill(worker, SIGSEGV) == 0);
    REQUIRE(wait_until([&] { return sbusd.log_count("killed by signal 11") == 1; }, 10s));
    const std::string log = sbusd.log();
    INFO(log);
    const std::size_t at = log.find("(pid " + std::to_string(worker) + ") killed by signal 11");
    REQUIRE(at != std::string::npos);
    const std::size_t line = log.rfind('\n', at) + 1;
    CHECK(log.compare(line + 24, 6, "error ") == 0);
    CHECK(sbusd.stop() == 0);
  }
  SECTION("a worker killed while stopping") {
    Daemon sbusd({.brokers = {}, .services = {"test.sleep"}, .drain_timeout_seconds = 30});
    sbusd.start();
    sbusd.wait_ready();
    const pid_t worker = sbusd.worker_pid(redacted("127.0.0.1", broker_port()));
    // A call without a deadline (as a py-servicebus sender's): test.sleep
    // stops early once its caller gives up, and this one must still run.
    sbus::SenderOptions options = sbusd.sender_options();
    options.send_deadline = false;
    sbus::Sender sender(options);
    std::thread call([&] {
      try {
        sender.call(sbusd.address("test.sleep"), "[30]", 2s);
      } catch (const sbus::SenderError&) {
      }
    });
    call.join();  // the call is running in the worker now
    sbusd.signal(SIGTERM);
    REQUIRE(wait_until([&] { return sbusd.log().find("stopping: draining workers") != std::string::npos; }, 5s));
    REQUIRE(::kill(worker, SIGKILL) == 0);
    REQUIRE(sbusd.wait_exit(10s));
    const std::string log = sbusd.log();
    INFO(log);
    const std::size_t at = log.find("(pid " + std::to_string(worker) + ") killed by signal 9");
    REQUIRE(at != std::string::npos);
    const std::size_t line = log.rfind('\n', at) + 1;
    CHECK(log.compare(line + 24, 6, "error ") == 0);
  }
}

namespace {

// A service line for the plugin whose library takes an hour to load.
const std::string kSlowLoadService =
    "  - name: slowload.nothing\n    plugin: " SBUS_BUILD_DIR "/test-plugins/slow_load_plugin.so\n";

}  // namespace

TEST_CASE("A reload whose check hangs neither freezes the supervisor nor changes the running config",
          "[supervisor][reload]") {
  // (A FIFO as the secret file no longer hangs anything: the key file rule
  // refuses it without opening it for reading, secret_file_test.cpp.)
  DaemonConfig hanging{.brokers = {}, .services = {"math.add"}};
  hanging.services_yaml = kSlowLoadService;

  Daemon sbusd;
  sbusd.start({}, {"--check-timeout", "8"});
  sbusd.wait_ready();
  sbus::Sender sender(sbusd.sender_options());
  REQUIRE(sender.call(sbusd.address("math.add"), "[1,2]", 10s).message == "3");

  sbusd.write_config(hanging);
  const auto reloaded = Clock::now();
  sbusd.signal(SIGHUP);
  REQUIRE(wait_until([&] { return sbusd.log().find("reloading") != std::string::npos; }, 5s));

  // While the check hangs: a killed worker is reaped and restarted.
  const pid_t worker = sbusd.worker_pid(redacted("127.0.0.1", broker_port()));
  REQUIRE(::kill(worker, SIGKILL) == 0);
  const auto killed = Clock::now();
  const auto sum = call_until_ok(sender, sbusd.address("math.add"), "[2,3]", 5s, 100ms);
  const auto recovery = ms_since(killed);
  std::cout << "[figure] worker SIGKILLed during a hanging reload check: served again after " << recovery << " ms\n";
  INFO("log:\n" << sbusd.log());
  REQUIRE(sum);
  CHECK(recovery < 2000);
  CHECK(sbusd.worker_pid(redacted("127.0.0.1", broker_port())) != worker);
  CHECK(sbusd.log_count("abandoned") == 0);  // the check was still running meanwhile

  // At its deadline the check is given up; the old config keeps serving.
  REQUIRE(wait_until([&] { return sbusd.log().find("did not finish within 8000 ms: abandoned") != std::string::npos; },
                     15s));
  const auto abandoned_after = ms_since(reloaded);
  std::cout << "[figure] hanging reload check abandoned after " << abandoned_after << " ms\n";
  CHECK(abandoned_after >= 7500);
  CHECK(sbusd.log().find("still running the previous config") != std::string::npos);
  CHECK(sender.call(sbusd.address("math.add"), "[3,4]", 10s).message == "7");

  // Another hanging reload, and SIGTERM while it runs: sbusd stops at once.
  sbusd.signal(SIGHUP);
  REQUIRE(wait_until([&] { return sbusd.log_count("reloading") == 2; }, 5s));
  const auto stopped = Clock::now();
  sbusd.signal(SIGTERM);
  const auto code = sbusd.wait_exit(6s);
  std::cout << "[figure] SIGTERM during a hanging reload check: exit after " << ms_since(stopped) << " ms\n";
  REQUIRE(code);
  CHECK(*code == 0);
}

TEST_CASE("sbusd --check gives up on a config that hangs at its deadline and says why", "[supervisor][check]") {
  Daemon sbusd;
  // A plugin that hangs while it loads (a FIFO as the secret file is
  // refused at once by the key file rule).
  sbusd.write_config({.brokers = {}, .services = {"math.add"}, .services_yaml = kSlowLoadService});
  const auto started = Clock::now();
  sbus_test::ProcessResult check = sbus_test::run_program(
      SBUS_BUILD_DIR "/bin/sbusd", {"--check", "--config", sbusd.config_path(), "--check-timeout", "2"}, 20s);
  const auto took = ms_since(started);
  std::cout << "[figure] sbusd --check --check-timeout 2 on a hanging config: exit " << check.exit_code << " after "
            << took << " ms: " << check.err;
  INFO(check.err);
  CHECK(check.exit_code == 1);
  CHECK(check.err.find("did not finish within 2000 ms") != std::string::npos);
  CHECK(took < 5000);
}

TEST_CASE("A message to a service switched off for crashing goes to the error queue with the reason",
          "[supervisor][restart][crash]") {
  Daemon sbusd({.brokers = {},
                .services = {"math.add"},
                .extra_yaml = "max_retries: 0\ncrash_limit: 2\n",
                .services_yaml = "  - name: test.crash_message\n    plugin: test\n    kind: message\n"});
  sbusd.start();
  sbusd.wait_ready();
  sbus::Sender sender(sbusd.sender_options());
  std::vector<sbus::DeadLetter> letters;
  // Each crashes the worker once; its redelivery goes to the error queue
  // (max_retries 0). The second crash switches the service off.
  for (std::size_t i = 1; i <= 2; ++i) {
    sender.send(sbusd.address("test.crash_message"), "[" + std::to_string(i) + "]");
    INFO("log:\n" << sbusd.log());
    REQUIRE(wait_until([&] { return (letters = sender.list_errors(sbusd.node())).size() == i; }, 10s, 100ms));
  }
  sender.send(sbusd.address("test.crash_message"), "[3]");
  REQUIRE(wait_until([&] { return (letters = sender.list_errors(sbusd.node())).size() == 3; }, 10s, 100ms));
  INFO("log:\n" << sbusd.log());
  const auto off = std::find_if(letters.begin(), letters.end(), [](const sbus::DeadLetter& letter) {
    return letter.body.find("[3]") != std::string::npos;
  });
  REQUIRE(off != letters.end());
  std::cout << "[figure] message to the switched-off test.crash_message: x-sbus-error: " << off->header("x-sbus-error")
            << "\n";
  CHECK(off->header("x-sbus-error").find("switched off") != std::string::npos);
  CHECK(off->header("x-sbus-service") == "test.crash_message");
  CHECK(sbusd.log_count("killed by signal 11") == 2);
  CHECK(sender.call(sbusd.address("math.add"), "[1,1]", 10s).message == "2");
  CHECK(sbusd.stop() == 0);
}

TEST_CASE(
    "A stuck call given up at the drain timeout after its connection was lost is answered `interrupted` "
    "when the broker delivers it again",
    "[supervisor][stop][drain]") {
  Daemon sbusd({.brokers = {}, .services = {"test.sleep", "math.add"}, .drain_timeout_seconds = 6});
  sbusd.start();
  sbusd.wait_ready();

  // A named reply queue: it outlives the caller's connection.
  RawAmqp caller;
  const std::string reply_queue = sbusd.node() + ".replies";
  amqp_queue_declare(caller.get(), 1, amqp_cstring_bytes(reply_queue.c_str()), 0, 0, 0, 0, amqp_empty_table);
  caller.check("declare " + reply_queue);
  caller.publish("py-servicebus", sbusd.node(), sbus_test::py_call_body("stuck", kSecret, "test", "sleep", "[3600]"),
                 reply_queue, "stuck");
  sbus::Sender sender(sbusd.sender_options());
  REQUIRE(sender.call(sbusd.address("math.add"), "[1,2]", 10s).message == "3");  // it holds the stuck call

  const std::string connection_pid = sbus_test::connection_named("sbusd " + sbusd.node());
  REQUIRE(!connection_pid.empty());

  // The worker alone stops (the supervisor starts another), and loses its
  // connection while it drains: it cannot answer the stuck call itself.
  const pid_t worker = sbusd.worker_pid(redacted("127.0.0.1", broker_port()));
  const auto stopped = Clock::now();
  REQUIRE(::kill(worker, SIGTERM) == 0);
  REQUIRE(sbus_test::broker_ctl({"close_connection", connection_pid, "closed by the integration test"}).exit_code == 0);

  amqp_basic_consume(caller.get(), 1, amqp_cstring_bytes(reply_queue.c_str()), amqp_empty_bytes, 0, 1, 0,
                     amqp_empty_table);
  caller.check("consume " + reply_queue);
  auto answer = caller.receive(20s);
  const auto answered_after = ms_since(stopped);
  std::cout << "[figure] stuck call of a worker stopped with its connection lost: answered after " << answered_after
            << " ms\n";
  INFO("log:\n" << sbusd.log());
  REQUIRE(answer);
  CHECK(answer->correlation_id == "stuck");
  CHECK(answer->body.find("interrupted") != std::string::npos);
  CHECK(sbusd.log().find("(pid " + std::to_string(worker) + ") exited with code 0") != std::string::npos);
  CHECK(sbusd.log_count("died during 1 call(s)") == 1);
  CHECK(sender.call(sbusd.address("math.add"), "[2,3]", 10s).message == "5");
  CHECK(sbusd.stop() == 0);
  amqp_queue_delete(caller.get(), 1, amqp_cstring_bytes(reply_queue.c_str()), 0, 0);
  caller.check("delete " + reply_queue);
}

TEST_CASE("An hmac call whose worker died is answered interrupted, not refused as a replay of itself",
          "[supervisor][restart][crash][hmac]") {
  // The redelivery carries a nonce the dead worker already recorded.
  const std::string mode = GENERATE(std::string("hmac-sha256"), std::string("hmac-sha256-v2"));
  INFO(mode);
  Daemon sbusd({.brokers = {}, .services = {"math.add", "test.crash"}, .extra_yaml = "accept: [" + mode + "]\n"});
  sbusd.start();
  sbusd.wait_ready();
  sbus::SenderOptions options = sbusd.sender_options();
  options.token = mode;
  sbus::Sender sender(options);
  const sbus::CallResult crash = sender.call(sbusd.address("test.crash"), "null", 20s);
  INFO(crash.error_code << ": " << crash.message << "\nlog:\n" << sbusd.log());
  CHECK(crash.error_code == "interrupted");
  CHECK(sender.dropped_replies() == 0);  // signed, in v2
  CHECK(sender.call(sbusd.address("math.add"), "[2,3]", 10s).message == "5");
}

TEST_CASE("A reload that starts accepting hmac tokens keeps their nonces in state_dir from then on",
          "[supervisor][reload][hmac]") {
  Daemon sbusd;
  sbusd.start();
  sbusd.wait_ready();
  const std::string file = sbusd.state_dir() + "/replay-nonces";
  CHECK_FALSE(std::filesystem::exists(file));  // compat only: nothing to keep

  sbusd.write_config({.brokers = {}, .extra_yaml = "accept: [compat, hmac-sha256-v2]\n"});
  sbusd.signal(SIGHUP);
  sbus::SenderOptions options = sbusd.sender_options();
  options.token = "hmac-sha256-v2";
  sbus::Sender sender(options);
  std::string last;
  // The workers are replaced one at a time: until then v2 calls are refused.
  CHECK(wait_until(
      [&] {
        const sbus::CallResult result = sender.call(sbusd.address("math.add"), "[1,2]", 5s);
        last = result.error_code + ": " + result.message;
        return result.ok() && result.message == "3";
      },
      15s, 100ms));
  INFO(last << "\nlog:\n" << sbusd.log());
  CHECK(std::filesystem::is_regular_file(file));
  CHECK(sbusd.stop() == 0);
}
