// What the fault tests share: private RabbitMQ nodes (Broker), an sbusd of
// their own (Daemon), figures printed as "[fault] TEST: key=value ...", and
// the small probes of queues, logs and processes they assert on.
#pragma once

#include <amqp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <exception>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "tcp_proxy.hpp"

namespace sbus_test {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

inline constexpr const char* kPingYaml = "ping_interval: 1\nping_timeout: 1.5\n";
inline constexpr double kPingIntervalS = 1.0;
inline constexpr double kPingTimeoutS = 1.5;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

inline std::string fixed(double value, int digits = 3) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << value;
  return out.str();
}

// One line of figures: "[fault] TEST: key=value key=value ...".
inline void print_figures(const std::string& test, const std::vector<std::pair<std::string, std::string>>& figures) {
  std::ostringstream line;
  line << "[fault] " << test << ":";
  for (const auto& [key, value] : figures) line << " " << key << "=" << value;
  std::cout << line.str() << std::endl;
}

inline std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\r')) text.pop_back();
  return text;
}

inline std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

inline std::string tail_lines(const std::string& text, std::size_t lines) {
  std::size_t at = text.size();
  for (std::size_t n = 0; n <= lines && at > 0; ++n) {
    const std::size_t found = text.rfind('\n', at - 1);
    if (found == std::string::npos) return text;
    at = found;
    if (n == lines) return text.substr(at + 1);
  }
  return text.substr(at);
}

// True when something accepts a TCP connection on 127.0.0.1:port now.
inline bool port_accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return ok;
}

// Live (not zombie) children of `parent`, from /proc.
inline std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> children;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = read_file("/proc/" + name + "/stat");
    const std::size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 1));
    char state = 0;
    pid_t ppid = 0;
    if (!(fields >> state >> ppid)) continue;
    if (ppid == parent && state != 'Z') children.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return children;
}

inline bool process_alive(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const std::size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return false;
  return stat[close + 2] != 'Z';
}

inline const std::string kBrokerScript = std::string(SBUS_SOURCE_DIR) + "/scripts/broker";

// A private RabbitMQ node NAME@localhost for one test, in a temporary folder
// that user rabbitmq can traverse. Stopped on destruction (also when the
// test fails half-way), after a SIGCONT in case the test froze it.
class Broker {
 public:
  explicit Broker(const std::string& role)
      : name_("f-" + role + "-" + std::to_string(getpid())), node_dir_(dir_.path() + "/node") {
    ::chmod(dir_.path().c_str(), 0755);
  }
  ~Broker() {
    try {
      stop();
    } catch (...) {
    }
  }
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Starts the node (afresh: scripts/broker wipes its mnesia). The first
  // start picks a free port, trying another if it was taken meanwhile; a
  // later start reuses the same port.
  void start() {
    std::string failures;
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (port_ == 0 || (attempt > 0 && !started_once_)) {
        const ProcessResult free = run_program(kBrokerScript, {"free-port"}, 10s);
        port_ = std::atoi(trimmed(free.out).c_str());
        if (free.exit_code != 0 || port_ <= 0) throw std::runtime_error("broker free-port failed: " + free.err);
      }
      attempted_ = true;
      // Longer than the script's own limits (60 s to boot, then 60 s to
      // answer), so that it always cleans up after itself.
      const ProcessResult result = run_program(kBrokerScript, {"start", name_, std::to_string(port_), node_dir_}, 150s);
      if (result.exit_code == 0) {
        started_once_ = true;
        return;
      }
      failures += "\n" + result.out + result.err;
      run_program(kBrokerScript, {"stop", name_, node_dir_}, 60s);
      // Only a port taken meanwhile is worth another try; a restart must
      // keep its port.
      const std::string said = result.err + result.out;
      if (started_once_ || (said.find("in use") == std::string::npos && said.find("eaddrinuse") == std::string::npos)) {
        break;
      }
    }
    throw std::runtime_error("cannot start broker " + name_ + ":" + failures);
  }

  // Also cleans up after a start that failed half-way.
  void stop() {
    if (!attempted_) return;
    signal(SIGCONT);
    run_program(kBrokerScript, {"stop", name_, node_dir_}, 60s);
    attempted_ = false;
  }

  // Stops the node and starts it again on the same port with its data
  // (scripts/broker restart): durable queues keep their persistent messages.
  void restart() {
    const ProcessResult result = run_program(kBrokerScript, {"restart", name_, node_dir_}, 150s);
    if (result.exit_code != 0)
      throw std::runtime_error("cannot restart broker " + name_ + ":\n" + result.out + result.err);
  }

  // The node's beam process, from its pid file; -1 if none.
  pid_t pid() const {
    const int pid = std::atoi(trimmed(read_file(node_dir_ + "/pid")).c_str());
    return pid > 0 ? pid : -1;
  }
  void signal(int signal) const {
    const pid_t beam = pid();
    if (beam > 0) ::kill(beam, signal);
  }
  // SIGKILL, then waits until the process is gone and the port refuses.
  void kill() {
    const pid_t beam = pid();
    if (beam <= 0) throw std::runtime_error("broker " + name_ + " has no pid file");
    ::kill(beam, SIGKILL);
    if (!wait_until([&] { return !process_alive(beam) && !port_accepts(port_); }, 15s)) {
      throw std::runtime_error("broker " + name_ + " still up 15 s after SIGKILL");
    }
  }

  ProcessResult ctl(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {"ctl", name_, node_dir_, "--"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(kBrokerScript, argv, 60s);
  }

  // The node's own log (RabbitMQ's, not the launcher's output).
  std::string log() const { return read_file(node_dir_ + "/log/" + erlang_node() + ".log"); }

  const std::string& name() const { return name_; }
  std::string erlang_node() const { return name_ + "@localhost"; }
  int port() const { return port_; }
  std::string uri() const { return "amqp://guest:guest@127.0.0.1:" + std::to_string(port_) + "/%2f"; }

 private:
  TempDir dir_;
  std::string name_;
  std::string node_dir_;
  int port_ = 0;
  bool attempted_ = false;
  bool started_once_ = false;
};

// Starts several nodes at once (each takes 5 to 10 s to boot).
inline void start_all(const std::vector<Broker*>& brokers) {
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(brokers.size());
  for (std::size_t i = 0; i < brokers.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        brokers[i]->start();
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::exception_ptr& error : errors) {
    if (error) std::rethrow_exception(error);
  }
}

// An sbusd child process with its own folder (config, secret, log, record
// file), serving a unique node with math.add, test.echo, test.sleep and
// test.record (kind message, writing to record_file()), logging at info.
// `extra_yaml` holds top-level YAML lines, added as they are;
// `extra_services` service entries ("  - name: ...\n") added after the
// standard ones. Unlike the harness's SbusdProcess it talks to the test's
// own brokers only.
class Daemon {
 public:
  Daemon(std::vector<std::string> brokers, const std::string& extra_yaml, const std::string& extra_services = {})
      : node_(unique_node()), brokers_(std::move(brokers)) {
    secret_file_ = write_secret(dir_.path());
    record_file_ = dir_.file("record.log");
    log_path_ = dir_.file("sbusd.log");
    std::string yaml = "node: " + node_ + "\nbrokers:\n";
    for (const std::string& broker : brokers_) yaml += "  - " + broker + "\n";
    yaml += "exchange: py-servicebus\n";
    yaml += "secret_file: " + secret_file_ + "\n";
    yaml += "plugin_dir: " SBUS_BUILD_DIR "/plugins\n";
    yaml += "drain_timeout: 5\n";
    yaml += "state_dir: " + dir_.file("state") + "\n";
    yaml += "log_level: debug\n";
    yaml += extra_yaml;
    yaml +=
        "services:\n"
        "  - name: math.add\n"
        "    plugin: math\n"
        "  - name: test.echo\n"
        "    plugin: test\n"
        "  - name: test.sleep\n"
        "    plugin: test\n"
        "  - name: test.record\n"
        "    plugin: test\n"
        "    kind: message\n"
        "    options:\n"
        "      file: " +
        record_file_ + "\n";
    yaml += extra_services;
    config_path_ = dir_.file("sbusd.yaml");
    write_file(config_path_, yaml);
    start();
  }
  ~Daemon() { stop(); }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Starts sbusd on the config (and state_dir) of this Daemon: at
  // construction, and again after kill_all().
  void start() {
    exit_code_.reset();
    const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log_fd < 0 || null_fd < 0) throw std::runtime_error("cannot open " + log_path_);
    const std::string binary = std::string(SBUS_BUILD_DIR) + "/bin/sbusd";
    pid_ = fork();
    if (pid_ == 0) {
      dup2(null_fd, STDIN_FILENO);
      dup2(log_fd, STDOUT_FILENO);
      dup2(log_fd, STDERR_FILENO);
      close_range(3, ~0U, 0);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      prctl(PR_SET_PDEATHSIG, SIGTERM);  // no orphan if the test process dies
      execl(binary.c_str(), binary.c_str(), "--config", config_path_.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    ::close(log_fd);
    ::close(null_fd);
    if (pid_ < 0) throw std::runtime_error("fork failed");
  }

  // SIGKILLs the supervisor and every worker at once, as a power loss
  // would end them (their files stay as the kernel has them), and waits
  // until all are gone. True when they are.
  bool kill_all() {
    const std::vector<pid_t> children = workers();
    ::kill(pid_, SIGKILL);
    for (pid_t child : children) ::kill(child, SIGKILL);
    const bool gone = wait_until(
        [&] {
          if (!exited()) return false;
          return std::none_of(children.begin(), children.end(), [](pid_t child) { return process_alive(child); });
        },
        10s, 5ms);
    pid_ = -1;
    return gone;
  }

  // Waits until the node answers PING through each of `brokers` (default:
  // all of its brokers); throws with the log otherwise.
  void wait_ready(std::vector<std::string> brokers = {}, std::chrono::milliseconds timeout = 20s) {
    if (brokers.empty()) brokers = brokers_;
    for (const std::string& broker : brokers) {
      std::optional<sbus::Sender> sender;
      const bool ready = wait_until(
          [&] {
            if (exited()) return true;
            try {
              if (!sender) sender.emplace(sender_options({broker}));
              return sender->ping(node_, 250ms);
            } catch (const sbus::SenderError&) {
              sender.reset();  // e.g. no exchange yet: the broker closed the channel
              return false;
            }
          },
          timeout, 50ms);
      if (exited()) throw std::runtime_error("sbusd exited before answering PING; its log:\n" + log());
      if (!ready) {
        throw std::runtime_error("sbusd node " + node_ + " did not answer PING via " + broker + "; its log:\n" + log());
      }
    }
  }

  sbus::SenderOptions sender_options(std::vector<std::string> brokers = {}, int retry = 0) const {
    sbus::SenderOptions options;
    options.brokers = brokers.empty() ? brokers_ : std::move(brokers);
    options.secret = kSecret;
    options.retry = retry;
    options.connect_timeout = 2000ms;
    return options;
  }

  bool exited() {
    if (exit_code_) return true;
    int status = 0;
    if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return true;
    }
    return false;
  }

  void stop() {
    if (pid_ <= 0 || exited()) return;
    ::kill(pid_, SIGTERM);
    if (wait_until([&] { return exited(); }, 10s, 10ms)) return;
    ::kill(pid_, SIGKILL);
    wait_until([&] { return exited(); }, 5s, 10ms);
  }

  // The worker processes (children of the supervisor).
  std::vector<pid_t> workers() const { return children_of(pid_); }

  pid_t pid() const { return pid_; }
  const std::string& node() const { return node_; }
  std::string address(const std::string& service) const { return node_ + "." + service; }
  const std::string& record_file() const { return record_file_; }
  const std::string& secret_file() const { return secret_file_; }
  std::string log() const { return read_file(log_path_); }

 private:
  TempDir dir_;
  std::string node_;
  std::vector<std::string> brokers_;
  std::string secret_file_;
  std::string record_file_;
  std::string log_path_;
  std::string config_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

// Calls math.add [a, b] and checks the sum; false on any failure.
inline bool add_ok(sbus::Sender& sender, const Daemon& daemon, long a, long b, std::chrono::milliseconds timeout) {
  const sbus::CallResult result =
      sender.call(daemon.address("math.add"), "[" + std::to_string(a) + "," + std::to_string(b) + "]", timeout);
  return result.ok() && result.message == std::to_string(a + b);
}

// Retries math.add with short timeouts and a fresh sender after each
// transport error, until one succeeds or `limit` passes; the seconds it took,
// or nullopt.
inline std::optional<double> time_until_served(const Daemon& daemon, const std::vector<std::string>& brokers,
                                               std::chrono::milliseconds limit,
                                               std::chrono::milliseconds call_timeout = 250ms) {
  const auto start = Clock::now();
  std::optional<sbus::Sender> sender;
  long n = 0;
  const bool served = wait_until(
      [&] {
        try {
          if (!sender) sender.emplace(daemon.sender_options(brokers));
          return add_ok(*sender, daemon, ++n, 1, call_timeout);
        } catch (const sbus::SenderError&) {
          sender.reset();
          return false;
        }
      },
      limit, 5ms);
  if (!served) return std::nullopt;
  return seconds_since(start);
}

// Messages in `queue` on the broker at `port` (passive declare), or nullopt
// if there is no such queue.
inline std::optional<std::uint32_t> queue_depth(int port, const std::string& queue) {
  try {
    RawAmqp raw(port);
    amqp_queue_declare_ok_t* ok =
        amqp_queue_declare(raw.get(), 1, amqp_cstring_bytes(queue.c_str()), 1, 0, 0, 0, amqp_empty_table);
    if (amqp_get_rpc_reply(raw.get()).reply_type != AMQP_RESPONSE_NORMAL || ok == nullptr) return std::nullopt;
    return ok->message_count;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The first message of `queue` (basic.get without ack: it stays there), with
// its text headers.
struct PeekedMessage {
  std::string body;
  std::map<std::string, std::string> headers;
};
inline std::optional<PeekedMessage> peek(int port, const std::string& queue) {
  RawAmqp raw(port);
  amqp_connection_state_t c = raw.get();
  const amqp_rpc_reply_t got = amqp_basic_get(c, 1, amqp_cstring_bytes(queue.c_str()), 0);
  if (got.reply_type != AMQP_RESPONSE_NORMAL || got.reply.id != AMQP_BASIC_GET_OK_METHOD) return std::nullopt;
  amqp_message_t message;
  if (amqp_read_message(c, 1, &message, 0).reply_type != AMQP_RESPONSE_NORMAL) return std::nullopt;
  PeekedMessage peeked;
  peeked.body.assign(static_cast<const char*>(message.body.bytes), message.body.len);
  const amqp_basic_properties_t& props = message.properties;
  if (props._flags & AMQP_BASIC_HEADERS_FLAG) {
    for (int i = 0; i < props.headers.num_entries; ++i) {
      const amqp_table_entry_t& entry = props.headers.entries[i];
      const std::string key(static_cast<const char*>(entry.key.bytes), entry.key.len);
      if (entry.value.kind == AMQP_FIELD_KIND_UTF8 || entry.value.kind == AMQP_FIELD_KIND_BYTES) {
        peeked.headers[key].assign(static_cast<const char*>(entry.value.value.bytes.bytes),
                                   entry.value.value.bytes.len);
      } else {
        peeked.headers[key] = "(kind " + std::to_string(entry.value.kind) + ")";
      }
    }
  }
  amqp_destroy_message(&message);
  return peeked;
}

// Watches a log from the current end: has `needle` been written since?
class LogWatch {
 public:
  explicit LogWatch(const Daemon& daemon) : daemon_(daemon), from_(daemon.log().size()) {}
  std::string since() const {
    const std::string log = daemon_.log();
    return log.size() > from_ ? log.substr(from_) : std::string();
  }
  bool seen(const std::string& needle) const { return since().find(needle) != std::string::npos; }

 private:
  const Daemon& daemon_;
  std::size_t from_;
};

// The outcome of a stream of calls made by a thread.
struct CallStats {
  std::atomic<long> attempted{0};
  std::atomic<long> succeeded{0};
  std::atomic<long> failed{0};
  std::atomic<long> succeeded_after_mark{0};  // successes that started after `mark`
  std::atomic<bool> marked{false};
  std::atomic<long long> longest_us{0};  // the longest single call, retries included
  std::mutex mutex;
  std::vector<std::string> errors;  // the first few
  Clock::time_point mark_at{};
  std::optional<double> first_success_after_mark_s;
};

// Calls math.add in a loop through `options`, each call with
// `call_timeout`, until `total` calls were made, `stop` is set, `limit`
// passed, or 3 calls failed (each may take the whole call timeout: more
// would only make the test slow).
inline void call_loop(const Daemon& daemon, sbus::SenderOptions options, long total, std::chrono::seconds limit,
                      std::chrono::milliseconds call_timeout, const std::atomic<bool>& stop, CallStats& stats) {
  sbus::Sender sender(std::move(options));
  const auto deadline = Clock::now() + limit;
  for (long i = 0; i < total && !stop && Clock::now() < deadline && stats.failed < 3; ++i) {
    const bool after_mark = stats.marked.load();
    const auto started = Clock::now();
    ++stats.attempted;
    std::string error;
    try {
      const sbus::CallResult result =
          sender.call(daemon.address("math.add"), "[" + std::to_string(i) + ",1]", call_timeout);
      if (!result.ok() || result.message != std::to_string(i + 1)) {
        error = "call " + std::to_string(i) + ": " + result.error_code + " " + result.message;
      }
    } catch (const sbus::SenderError& e) {
      error = "call " + std::to_string(i) + ": " + e.what();
    }
    const long long us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count();
    if (us > stats.longest_us) stats.longest_us = us;
    if (error.empty()) {
      ++stats.succeeded;
      if (after_mark) {
        if (++stats.succeeded_after_mark == 1) {
          std::lock_guard<std::mutex> lock(stats.mutex);
          stats.first_success_after_mark_s = std::chrono::duration<double>(Clock::now() - stats.mark_at).count();
        }
      }
    } else {
      ++stats.failed;
      std::lock_guard<std::mutex> lock(stats.mutex);
      if (stats.errors.size() < 5) stats.errors.push_back(error);
    }
  }
}

inline void mark(CallStats& stats) {
  {
    std::lock_guard<std::mutex> lock(stats.mutex);
    stats.mark_at = Clock::now();
  }
  stats.marked = true;
}

inline std::string errors_text(CallStats& stats) {
  std::lock_guard<std::mutex> lock(stats.mutex);
  std::string text;
  for (const std::string& error : stats.errors) text += "\n  " + error;
  return text;
}

}  // namespace sbus_test
