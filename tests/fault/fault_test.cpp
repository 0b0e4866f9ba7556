// Fault tests: real RabbitMQ nodes killed, frozen, cut off and clustered
// under a running sbusd. Each test starts its own private nodes (never the
// fixture's shared broker, since it kills them), prints its figures on
// stdout as lines starting with "[fault]", and fails on any lost call or
// message. Every wait has a deadline and every loop a count.
//
// The ping watcher is set to ping_interval 1 s, ping_timeout 1.5 s where the
// test measures detection (printed with the figures).
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
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr const char* kPingYaml = "ping_interval: 1\nping_timeout: 1.5\n";
constexpr double kPingIntervalS = 1.0;
constexpr double kPingTimeoutS = 1.5;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string fixed(double value, int digits = 3) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << value;
  return out.str();
}

// One line of figures: "[fault] TEST: key=value key=value ...".
void print_figures(const std::string& test, const std::vector<std::pair<std::string, std::string>>& figures) {
  std::ostringstream line;
  line << "[fault] " << test << ":";
  for (const auto& [key, value] : figures) line << " " << key << "=" << value;
  std::cout << line.str() << std::endl;
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\r')) text.pop_back();
  return text;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

std::string tail_lines(const std::string& text, std::size_t lines) {
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
bool port_accepts(int port) {
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
std::vector<pid_t> children_of(pid_t parent) {
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

bool process_alive(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const std::size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return false;
  return stat[close + 2] != 'Z';
}

const std::string kBrokerScript = std::string(SBUS_SOURCE_DIR) + "/scripts/broker";

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
void start_all(const std::vector<Broker*>& brokers) {
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
    yaml += "state_dir: " + dir_.file("state") + "\n";
    yaml += "plugin_dir: " SBUS_BUILD_DIR "/plugins\n";
    yaml += "drain_timeout: 5\n";
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

    const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log_fd < 0 || null_fd < 0) throw std::runtime_error("cannot open " + log_path_);
    const std::string binary = std::string(SBUS_BUILD_DIR) + "/bin/sbusd";
    sbus_test::require_own_state_dir({binary, "--config", config_path_});
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
  ~Daemon() { stop(); }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

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
bool add_ok(sbus::Sender& sender, const Daemon& daemon, long a, long b, std::chrono::milliseconds timeout) {
  const sbus::CallResult result =
      sender.call(daemon.address("math.add"), "[" + std::to_string(a) + "," + std::to_string(b) + "]", timeout);
  return result.ok() && result.message == std::to_string(a + b);
}

// Retries math.add with short timeouts and a fresh sender after each
// transport error, until one succeeds or `limit` passes; the seconds it took,
// or nullopt.
std::optional<double> time_until_served(const Daemon& daemon, const std::vector<std::string>& brokers,
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
std::optional<std::uint32_t> queue_depth(int port, const std::string& queue) {
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
std::optional<PeekedMessage> peek(int port, const std::string& queue) {
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
void call_loop(const Daemon& daemon, sbus::SenderOptions options, long total, std::chrono::seconds limit,
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

void mark(CallStats& stats) {
  {
    std::lock_guard<std::mutex> lock(stats.mutex);
    stats.mark_at = Clock::now();
  }
  stats.marked = true;
}

std::string errors_text(CallStats& stats) {
  std::lock_guard<std::mutex> lock(stats.mutex);
  std::string text;
  for (const std::string& error : stats.errors) text += "\n  " + error;
  return text;
}

// `sbus errors requeue` moves each message once and loses none: 50 poison
// messages of a node with max_retries 0, where a requeued message is back in
// NODE.error within a millisecond or two, while `requeue` may still be
// emptying the queue.
void check_requeue(const Broker& broker) {
  Daemon daemon({broker.uri()}, "max_retries: 0\n",
                "  - name: test.poison\n"
                "    plugin: test\n"
                "    kind: message\n"
                "    export: fail_message\n");
  daemon.wait_ready();
  const std::string error_queue = daemon.node() + ".error";
  constexpr long kPoison = 50;
  {
    sbus::Sender sender(daemon.sender_options());
    for (long i = 0; i < kPoison; ++i) sender.send(daemon.address("test.poison"), "[" + std::to_string(i) + "]");
  }
  auto error_queue_full = [&] {
    return wait_until(
        [&] {
          const auto depth = queue_depth(broker.port(), error_queue);
          // More is possible: a requeue killed between publish and ack
          // leaves the message in both queues (at least once).
          return depth && *depth >= kPoison;
        },
        10s, 50ms);
  };
  REQUIRE(error_queue_full());

  // `what` runs `sbus errors requeue` with `extra` arguments, then waits for
  // the messages to fail again and come back.
  struct Round {
    int exit_code = -1;
    std::string out;
    std::string err;
    double seconds = 0;
    long moved = -1;
    bool back = false;
    std::optional<std::uint32_t> depth;
    std::size_t attempts = 0;
  };
  auto poison_handled = [&]() -> std::size_t {
    try {
      sbus::Sender sender(daemon.sender_options());
      const sbus::CallResult stats = sender.call(daemon.node() + ".sbus.stats", "[]", 5s);
      std::smatch handled;
      // "test.poison":{"kind":"message","handled":N,...
      if (std::regex_search(stats.message, handled, std::regex(R"("test\.poison":\{[^}]*"handled":(\d+))"))) {
        return std::stoul(handled[1].str());
      }
    } catch (const sbus::SenderError&) {
    }
    return 0;
  };
  auto requeue = [&](const std::vector<std::string>& extra) {
    Round round;
    std::vector<std::string> args = {"errors", "requeue", daemon.node(), "--broker", broker.uri()};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto started = Clock::now();
    // 50 messages take well under a second: 10 s is a hang.
    const ProcessResult result = run_cli(args, 10s);
    round.seconds = seconds_since(started);
    round.exit_code = result.exit_code;
    round.out = trimmed(result.out);
    round.err = trimmed(result.err);
    std::smatch number;
    if (std::regex_search(round.out, number, std::regex(R"(\d+)"))) round.moved = std::stol(number.str());
    round.back = error_queue_full();
    round.depth = queue_depth(broker.port(), error_queue);
    // Runs of on_message, from the agent's own count (its attempt lines are
    // rate limited in the log): with max_retries 0, one per message and pass.
    wait_until([&] { return poison_handled() >= 2 * kPoison; }, 10s, 100ms);
    round.attempts = poison_handled();
    return round;
  };
  auto print = [&](const std::string& name, const Round& round) {
    print_figures(name, {{"attempted", std::to_string(kPoison)},
                         {"requeue_exit", std::to_string(round.exit_code)},
                         {"requeue_seconds", fixed(round.seconds)},
                         {"requeue_out", "'" + round.out + "'"},
                         {"moved", std::to_string(round.moved)},
                         {"error_queue_depth_after", round.depth ? std::to_string(*round.depth) : "no queue"},
                         {"on_message_attempts_so_far", std::to_string(round.attempts)},
                         {"lost", std::to_string(std::max(0L, kPoison - static_cast<long>(round.depth.value_or(0))))}});
    if (!round.err.empty()) std::cout << "[fault]   stderr: " << round.err << std::endl;
  };

  // With the secret: each message is moved once, fails again once and
  // comes back.
  {
    const Round round = requeue({"--secret-file", daemon.secret_file()});
    print("errors requeue with secret, max_retries 0", round);
    CHECK(round.exit_code == 0);
    // A requeue that takes back what already failed again moves more than
    // there were (or never ends).
    CHECK(round.moved == kPoison);
    CHECK(round.back);
    CHECK(round.attempts == 2 * kPoison);
    REQUIRE(round.back);
  }
  // Without a secret: refused (requeued messages are signed again), and
  // nothing lost.
  {
    const Round round = requeue({});
    print("errors requeue without secret, max_retries 0", round);
    if (!round.back) {
      std::cout << "sbusd log (last 5 lines):\n" << tail_lines(daemon.log(), 5) << std::endl;
    }
    CHECK(round.exit_code == 2);
    CHECK(round.err.find("secret") != std::string::npos);
    // All of them are still in NODE.error.
    CHECK(round.back);
  }
}

}  // namespace

TEST_CASE("sbusd serves again within 1 s of a SIGKILLed broker accepting connections again", "[fault]") {
  Broker broker("kill");
  broker.start();
  Daemon daemon({broker.uri()}, kPingYaml);
  daemon.wait_ready();
  {
    sbus::Sender sender(daemon.sender_options());
    REQUIRE(add_ok(sender, daemon, 1, 2, 5s));
  }

  const auto killed_at = Clock::now();
  broker.kill();
  // The same node, port and folder again (fresh mnesia: the worker must
  // declare the exchange and its queue anew), while we watch the port.
  std::exception_ptr start_error;
  std::thread restart([&] {
    try {
      broker.start();
    } catch (...) {
      start_error = std::current_exception();
    }
  });
  const bool accepts = wait_until([&] { return port_accepts(broker.port()); }, 90s, 5ms);
  const auto accepting_at = Clock::now();
  const double down_s = std::chrono::duration<double>(accepting_at - killed_at).count();
  std::optional<double> recovery;
  if (accepts) recovery = time_until_served(daemon, {broker.uri()}, 30s);
  restart.join();
  if (start_error) std::rethrow_exception(start_error);
  REQUIRE(accepts);

  const std::string log = daemon.log();
  print_figures("broker SIGKILL+restart", {{"ping_interval_s", fixed(kPingIntervalS, 1)},
                                           {"ping_timeout_s", fixed(kPingTimeoutS, 1)},
                                           {"broker_down_s", fixed(down_s)},
                                           {"reconnect_attempts", std::to_string(count_of(log, "reconnecting to "))},
                                           {"seconds_to_recover", recovery ? fixed(*recovery) : "never(30s)"},
                                           {"attempted", "1"},
                                           {"succeeded", recovery ? "1" : "0"},
                                           {"failed", recovery ? "0" : "1"},
                                           {"lost", "0"}});
  if (!recovery || *recovery >= 1.0) {
    std::cout << "sbusd log (last 40 lines):\n" << tail_lines(log, 40) << std::endl;
  }
  REQUIRE(recovery.has_value());
  CHECK(*recovery < 1.0);
}

TEST_CASE("a broker frozen by SIGSTOP is noticed within ping_interval + ping_timeout and served again after SIGCONT",
          "[fault]") {
  Broker broker("stop");
  broker.start();
  Daemon daemon({broker.uri()}, kPingYaml);
  daemon.wait_ready();
  {
    sbus::Sender sender(daemon.sender_options());
    REQUIRE(add_ok(sender, daemon, 1, 2, 5s));
  }

  LogWatch watch(daemon);
  const auto stopped_at = Clock::now();
  broker.signal(SIGSTOP);
  const bool noticed = wait_until([&] { return watch.seen("ping: no answer"); }, 9s, 5ms);
  const double detect_s = seconds_since(stopped_at);
  // Frozen 10 s in all.
  std::this_thread::sleep_until(stopped_at + 10s);
  broker.signal(SIGCONT);
  const std::optional<double> recovery = time_until_served(daemon, {broker.uri()}, 30s, 500ms);

  const double limit_s = kPingIntervalS + kPingTimeoutS;
  print_figures("broker SIGSTOP 10s", {{"ping_interval_s", fixed(kPingIntervalS, 1)},
                                       {"ping_timeout_s", fixed(kPingTimeoutS, 1)},
                                       {"detected", noticed ? "yes" : "no"},
                                       {"seconds_to_detect", noticed ? fixed(detect_s) : "never(9s)"},
                                       {"detect_limit_s", fixed(limit_s + 0.25, 2)},
                                       {"seconds_to_recover_after_SIGCONT", recovery ? fixed(*recovery) : "never(30s)"},
                                       {"attempted", "1"},
                                       {"succeeded", recovery ? "1" : "0"},
                                       {"failed", recovery ? "0" : "1"},
                                       {"lost", "0"}});
  if (!noticed || detect_s > limit_s + 0.25 || !recovery || *recovery > 5.0) {
    std::cout << "sbusd log since SIGSTOP:\n" << watch.since() << std::endl;
  }
  CHECK(noticed);
  // 0.25 s of slack for scheduling and our own polling of the log.
  CHECK(detect_s <= limit_s + 0.25);
  REQUIRE(recovery.has_value());
  CHECK(*recovery < 5.0);
}

TEST_CASE("a link that silently drops everything is noticed by the ping watcher and the worker reconnects", "[fault]") {
  Broker broker("cut");
  broker.start();
  TcpProxy proxy(broker.port());
  // sbusd goes through the proxy; the test's senders go to the broker
  // directly, where the node's queue is the same.
  Daemon daemon({proxy.uri()}, kPingYaml);
  daemon.wait_ready({broker.uri()});
  {
    sbus::Sender sender(daemon.sender_options({broker.uri()}));
    REQUIRE(add_ok(sender, daemon, 1, 2, 5s));
  }
  REQUIRE(count_of(daemon.log(), "connected to ") == 1);

  LogWatch watch(daemon);
  const auto cut_at = Clock::now();
  proxy.blackhole(true);
  const bool noticed = wait_until([&] { return watch.seen("ping: no answer"); }, 9s, 5ms);
  const double detect_s = seconds_since(cut_at);
  proxy.blackhole(false);
  const auto restored_at = Clock::now();
  const std::optional<double> recovery = time_until_served(daemon, {broker.uri()}, 30s, 500ms);
  const bool reconnected = wait_until([&] { return count_of(daemon.log(), "connected to ") >= 2; }, 15s);
  const double reconnect_s = seconds_since(restored_at);

  const double limit_s = kPingIntervalS + kPingTimeoutS;
  print_figures("link blackholed", {{"ping_interval_s", fixed(kPingIntervalS, 1)},
                                    {"ping_timeout_s", fixed(kPingTimeoutS, 1)},
                                    {"detected", noticed ? "yes" : "no"},
                                    {"seconds_to_detect", noticed ? fixed(detect_s) : "never(9s)"},
                                    {"detect_limit_s", fixed(limit_s + 0.25, 2)},
                                    {"seconds_to_recover_after_restore", recovery ? fixed(*recovery) : "never(30s)"},
                                    {"reconnected", reconnected ? "yes" : "no"},
                                    {"seconds_to_connected_line", fixed(reconnect_s)},
                                    {"proxy_connections", std::to_string(proxy.accepted())},
                                    {"attempted", "1"},
                                    {"succeeded", recovery ? "1" : "0"},
                                    {"failed", recovery ? "0" : "1"},
                                    {"lost", "0"}});
  if (!noticed || detect_s > limit_s + 0.25 || !recovery || !reconnected) {
    std::cout << "sbusd log since the cut:\n" << watch.since() << std::endl;
  }
  CHECK(noticed);
  CHECK(detect_s <= limit_s + 0.25);
  CHECK(recovery.has_value());
  CHECK(reconnected);
  // The new connection went through the proxy again.
  bool via_proxy = false;
  {
    std::istringstream lines(watch.since());
    std::string line;
    while (std::getline(lines, line)) {
      if (line.find("connected to ") != std::string::npos &&
          line.find(":" + std::to_string(proxy.port()) + "/") != std::string::npos) {
        via_proxy = true;
      }
    }
  }
  CHECK(via_proxy);
}

TEST_CASE("calls with retry 1 fail over to the second broker when the first is SIGKILLed, without a failure",
          "[fault]") {
  Broker a("fo-a");
  Broker b("fo-b");
  start_all({&a, &b});
  Daemon daemon({a.uri(), b.uri()}, kPingYaml);
  daemon.wait_ready();

  CallStats stats;
  std::atomic<bool> stop{false};
  constexpr long kTotal = 3000;
  std::thread caller([&] {
    call_loop(daemon, daemon.sender_options({a.uri(), b.uri()}, 1), kTotal, 90s, 5s, stop, stats);
  });
  const bool halfway = wait_until([&] { return stats.attempted >= kTotal / 3 || stats.failed > 0; }, 60s, 1ms);
  const long before_kill = stats.succeeded;
  mark(stats);
  a.kill();
  caller.join();

  std::optional<double> first_after;
  {
    std::lock_guard<std::mutex> lock(stats.mutex);
    first_after = stats.first_success_after_mark_s;
  }
  print_figures("failover A->B, retry 1", {{"attempted", std::to_string(stats.attempted)},
                                           {"succeeded", std::to_string(stats.succeeded)},
                                           {"failed", std::to_string(stats.failed)},
                                           {"lost", std::to_string(stats.attempted - stats.succeeded)},
                                           {"succeeded_before_kill", std::to_string(before_kill)},
                                           {"succeeded_after_kill", std::to_string(stats.succeeded_after_mark)},
                                           {"longest_call_s", fixed(stats.longest_us / 1e6)},
                                           {"seconds_to_recover", first_after ? fixed(*first_after) : "never"}});
  INFO("errors:" << errors_text(stats));
  REQUIRE(halfway);
  CHECK(stats.attempted >= 2000);
  CHECK(stats.failed == 0);
  CHECK(stats.succeeded == stats.attempted);
  CHECK(stats.succeeded_after_mark >= 1000);
}

TEST_CASE("ten thousand confirmed messages survive three SIGKILLs of the worker: none is lost", "[fault]") {
  Broker broker("msg");
  broker.start();
  Daemon daemon({broker.uri()}, kPingYaml);
  daemon.wait_ready();
  const std::vector<pid_t> first_workers = daemon.workers();
  REQUIRE(first_workers.size() == 1);

  constexpr int kMessages = 10000;
  constexpr int kKills = 3;
  std::atomic<int> sent{0};
  std::atomic<bool> sending_done{false};
  std::vector<pid_t> killed;
  std::vector<std::string> kill_notes;

  // Kills the worker when a quarter, half and three quarters are sent, each
  // time once the previous replacement is connected again and recording.
  std::thread killer([&] {
    for (int k = 1; k <= kKills; ++k) {
      const auto deadline = Clock::now() + 30s;
      while (Clock::now() < deadline && sent < kMessages * k / (kKills + 1) && !sending_done) {
        std::this_thread::sleep_for(1ms);
      }
      pid_t victim = -1;
      const std::size_t lines_before = count_of(read_file(daemon.record_file()), "\n");
      wait_until(
          [&] {
            const std::vector<pid_t> workers = daemon.workers();
            if (workers.size() != 1 || std::find(killed.begin(), killed.end(), workers[0]) != killed.end()) {
              return false;
            }
            // Connected (one "connected to" line per worker start) and busy.
            if (count_of(daemon.log(), "connected to ") < killed.size() + 1) return false;
            if (count_of(read_file(daemon.record_file()), "\n") <= lines_before && !sending_done) return false;
            victim = workers[0];
            return true;
          },
          20s, 2ms);
      if (victim <= 0) {
        kill_notes.push_back("kill " + std::to_string(k) + ": no serving worker found");
        continue;
      }
      ::kill(victim, SIGKILL);
      killed.push_back(victim);
      kill_notes.push_back("kill " + std::to_string(k) + " at sent=" + std::to_string(sent.load()) +
                           " recorded=" + std::to_string(count_of(read_file(daemon.record_file()), "\n")));
    }
  });

  // Four senders, each with its own connection, share the numbers.
  constexpr int kSenders = 4;
  const auto send_start = Clock::now();
  std::atomic<long> send_failures{0};
  std::mutex error_mutex;
  std::string first_send_error;
  std::vector<std::thread> senders;
  for (int t = 0; t < kSenders; ++t) {
    senders.emplace_back([&, t] {
      sbus::Sender sender(daemon.sender_options());
      for (int seq = t; seq < kMessages; seq += kSenders) {
        bool done = false;
        // A failed send is sent again (messages are at-least-once): only a
        // send that never succeeds counts as failed.
        for (int attempt = 0; attempt < 3 && !done; ++attempt) {
          try {
            sender.send(daemon.address("test.record"), "[" + std::to_string(seq) + "]");
            done = true;
          } catch (const sbus::SenderError& e) {
            ++send_failures;
            std::lock_guard<std::mutex> lock(error_mutex);
            if (first_send_error.empty()) first_send_error = e.what();
          }
        }
        if (done) ++sent;
      }
    });
  }
  for (std::thread& thread : senders) thread.join();
  const double send_s = seconds_since(send_start);
  sending_done = true;
  killer.join();

  // Every number at least once, within a deadline.
  std::vector<int> seen(kMessages, 0);
  long duplicates = 0;
  long missing = kMessages;
  auto tally = [&] {
    std::fill(seen.begin(), seen.end(), 0);
    std::istringstream lines(read_file(daemon.record_file()));
    std::string line;
    while (std::getline(lines, line)) {
      if (line.size() < 3 || line.front() != '[') continue;
      const int seq = std::atoi(line.c_str() + 1);
      if (seq >= 0 && seq < kMessages) ++seen[seq];
    }
    duplicates = 0;
    missing = 0;
    for (int count : seen) {
      if (count == 0) ++missing;
      if (count > 1) duplicates += count - 1;
    }
    return missing == 0;
  };
  const auto drain_start = Clock::now();
  const bool complete = wait_until(tally, 60s, 200ms);
  const double drain_s = seconds_since(drain_start);
  const std::optional<std::uint32_t> in_error_queue = queue_depth(broker.port(), daemon.node() + ".error");

  print_figures("10k messages, worker SIGKILLed",
                {{"attempted", std::to_string(kMessages)},
                 {"senders", std::to_string(kSenders)},
                 {"sent_confirmed", std::to_string(sent.load())},
                 {"send_retries", std::to_string(send_failures.load())},
                 {"recorded_distinct", std::to_string(kMessages - missing)},
                 {"failed", std::to_string(kMessages - sent.load())},
                 {"lost", std::to_string(missing)},
                 {"duplicates", std::to_string(duplicates)},
                 {"worker_kills", std::to_string(killed.size())},
                 {"in_error_queue", in_error_queue ? std::to_string(*in_error_queue) : "n/a"},
                 {"send_seconds", fixed(send_s)},
                 {"seconds_to_drain_after_send", fixed(drain_s)}});
  for (const std::string& note : kill_notes) std::cout << "[fault]   " << note << std::endl;
  if (!first_send_error.empty()) std::cout << "[fault]   first send error: " << first_send_error << std::endl;
  if (!complete) {
    std::string first_missing;
    for (int seq = 0, shown = 0; seq < kMessages && shown < 20; ++seq) {
      if (seen[seq] == 0) {
        first_missing += " " + std::to_string(seq);
        ++shown;
      }
    }
    std::cout << "[fault]   first missing:" << first_missing << "\nsbusd log (last 40 lines):\n"
              << tail_lines(daemon.log(), 40) << std::endl;
  }
  CHECK(killed.size() == static_cast<std::size_t>(kKills));
  CHECK(sent == kMessages);
  CHECK(missing == 0);
}

TEST_CASE("a poison message ends in NODE.error after max_retries, the worker keeps serving, and requeue loses none",
          "[fault]") {
  Broker broker("poison");
  broker.start();
  Daemon daemon({broker.uri()}, "max_retries: 2\n",
                "  - name: test.poison\n"
                "    plugin: test\n"
                "    kind: message\n"
                "    export: fail_message\n");
  try {
    daemon.wait_ready({}, 15s);
  } catch (const std::exception& e) {
    const std::string log = daemon.log();
    if (log.find("fail_message") != std::string::npos || log.find("max_retries") != std::string::npos) {
      FAIL(
          "feature missing (not a fault): sbusd refuses the config: test plugin export `fail_message` "
          "or key `max_retries` is not there yet. Log:\n"
          << log);
    }
    throw;
  }
  const std::vector<pid_t> workers_before = daemon.workers();
  const std::string error_queue = daemon.node() + ".error";

  const auto sent_at = Clock::now();
  {
    sbus::Sender sender(daemon.sender_options());
    sender.send(daemon.address("test.poison"), R"({"poison": 1})");
  }
  const bool dead_lettered = wait_until(
      [&] {
        const auto depth = queue_depth(broker.port(), error_queue);
        return depth && *depth == 1;
      },
      20s, 50ms);
  const double dead_letter_s = seconds_since(sent_at);
  const std::optional<std::uint32_t> depth = queue_depth(broker.port(), error_queue);
  const std::string since_send = daemon.log();
  const std::size_t attempts_logged = count_of(since_send, "test.poison: attempt ");

  std::optional<PeekedMessage> peeked;
  if (dead_lettered) peeked = peek(broker.port(), error_queue);

  bool served = false;
  {
    sbus::Sender sender(daemon.sender_options());
    served = add_ok(sender, daemon, 20, 22, 5s);
  }

  const ProcessResult listed =
      run_cli({"errors", "list", daemon.node(), "--broker", broker.uri(), "--secret-file", daemon.secret_file()}, 20s);
  // One line per message; a closing summary line ("N message(s) in Q") is
  // allowed on top.
  std::size_t listed_lines = 0;
  std::size_t lines_with_error = 0;
  {
    std::istringstream lines(listed.out);
    std::string line;
    while (std::getline(lines, line)) {
      if (trimmed(line).empty() || line.find("message(s) in") != std::string::npos) continue;
      ++listed_lines;
      lines_with_error += line.find("test.fail_message always fails") != std::string::npos;
    }
  }
  const ProcessResult requeued = run_cli(
      {"errors", "requeue", daemon.node(), "--broker", broker.uri(), "--secret-file", daemon.secret_file()}, 20s);
  const bool requeue_says_one = std::regex_search(requeued.out, std::regex(R"((^|\D)1(\D|$))"));
  // Requeued, it fails max_retries + 1 times again and comes back.
  const bool back_in_error_queue =
      requeued.exit_code == 0 && wait_until(
                                     [&] {
                                       const auto d = queue_depth(broker.port(), error_queue);
                                       return d && *d == 1 &&
                                              count_of(daemon.log(), "test.poison: attempt ") >= 2 * attempts_logged;
                                     },
                                     20s, 50ms);

  print_figures("poison message, max_retries 2", {{"attempted", "1"},
                                                  {"dead_lettered", dead_lettered ? "yes" : "no"},
                                                  {"error_queue_depth", depth ? std::to_string(*depth) : "no queue"},
                                                  {"seconds_to_error_queue", fixed(dead_letter_s)},
                                                  {"attempts_logged", std::to_string(attempts_logged)},
                                                  {"x-sbus-error", peeked && peeked->headers.count("x-sbus-error")
                                                                       ? "'" + peeked->headers["x-sbus-error"] + "'"
                                                                       : "absent"},
                                                  {"math.add_after", served ? "ok" : "FAILED"},
                                                  {"errors_list_exit", std::to_string(listed.exit_code)},
                                                  {"errors_list_lines", std::to_string(listed_lines)},
                                                  {"errors_requeue_exit", std::to_string(requeued.exit_code)},
                                                  {"errors_requeue_out", "'" + trimmed(requeued.out) + "'"},
                                                  {"back_in_error_queue", back_in_error_queue ? "yes" : "no"},
                                                  {"lost", dead_lettered ? "0" : "1"}});
  std::cout << "[fault]   sbus errors list output:\n" << listed.out << std::flush;
  if (listed.exit_code != 0) std::cout << "[fault]   sbus errors list stderr: " << trimmed(listed.err) << std::endl;
  if (requeued.exit_code != 0)
    std::cout << "[fault]   sbus errors requeue stderr: " << trimmed(requeued.err) << std::endl;

  CHECK(dead_lettered);
  REQUIRE(peeked.has_value());
  CHECK(peeked->headers.count("x-sbus-error") == 1);
  CHECK(peeked->headers["x-sbus-error"].find("fail") != std::string::npos);
  CHECK(peeked->body.find("poison") != std::string::npos);
  // 1 first try + max_retries retries.
  CHECK(attempts_logged == 3);
  CHECK(served);
  CHECK(daemon.workers() == workers_before);
  CHECK(listed.exit_code == 0);
  CHECK(lines_with_error == 1);
  CHECK(listed_lines == 1);
  CHECK(requeued.exit_code == 0);
  CHECK(requeue_says_one);
  CHECK(back_in_error_queue);

  check_requeue(broker);
}

TEST_CASE("with a quorum node queue on a three-node cluster, calls go on when a node is SIGKILLed", "[fault]") {
  Broker a("a");
  Broker b("b");
  Broker c("c");
  const auto boot_start = Clock::now();
  start_all({&a, &b, &c});
  // B, then C, join A (stop_app, join_cluster, start_app). One at a time:
  // two nodes joining at once can make mnesia fail to start on a loaded
  // machine; start_app is retried for the same reason.
  std::vector<std::string> join_errors(2);
  const std::vector<Broker*> joiners = {&b, &c};
  for (std::size_t j = 0; j < joiners.size(); ++j) {
    const std::vector<std::vector<std::string>> steps = {
        {"stop_app"}, {"join_cluster", a.erlang_node()}, {"start_app"}};
    for (const std::vector<std::string>& args : steps) {
      ProcessResult result = joiners[j]->ctl(args);
      for (int retry = 0; result.exit_code != 0 && args[0] == "start_app" && retry < 3; ++retry) {
        std::this_thread::sleep_for(2s);
        result = joiners[j]->ctl(args);
      }
      if (result.exit_code != 0) {
        join_errors[j] =
            "rabbitmqctl -n " + joiners[j]->erlang_node() + " " + args[0] + ":\n" + result.out + result.err;
        break;
      }
    }
  }
  INFO(join_errors[0] << join_errors[1]);
  REQUIRE(join_errors[0].empty());
  REQUIRE(join_errors[1].empty());
  const ProcessResult status = a.ctl({"-q", "cluster_status", "--formatter", "json"});
  INFO(status.out << status.err);
  REQUIRE(status.out.find(b.erlang_node()) != std::string::npos);
  REQUIRE(status.out.find(c.erlang_node()) != std::string::npos);
  const double boot_s = seconds_since(boot_start);

  Daemon daemon({a.uri(), b.uri(), c.uri()}, std::string(kPingYaml) + "queue_type: quorum\n");
  try {
    daemon.wait_ready();
  } catch (const std::exception&) {
    if (daemon.log().find("queue_type") != std::string::npos) {
      FAIL("feature missing (not a fault): sbusd refuses `queue_type: quorum`. Log:\n" << daemon.log());
    }
    throw;
  }
  const ProcessResult queues = a.ctl({"-q", "list_queues", "name", "type", "leader", "members"});
  std::cout << "[fault]   queues on the cluster:\n" << queues.out;
  CHECK(queues.out.find(daemon.node()) != std::string::npos);
  bool quorum = false;
  {
    std::istringstream lines(queues.out);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind(daemon.node() + "\t", 0) == 0 && line.find("quorum") != std::string::npos) quorum = true;
    }
  }
  CHECK(quorum);

  CallStats stats;
  std::atomic<bool> stop{false};
  constexpr long kTotal = 2500;
  std::thread caller([&] {
    call_loop(daemon, daemon.sender_options({a.uri(), b.uri(), c.uri()}, 2), kTotal, 60s, 3s, stop, stats);
  });
  const bool started = wait_until([&] { return stats.attempted >= 500 || stats.failed > 0; }, 30s, 1ms);
  const long before_kill = stats.succeeded;
  // A caller connected to A with calls running on the workers when A dies
  // (its replies then go to a direct reply-to address on a dead node): the
  // callers of the other nodes must not notice.
  sbus::Sender stranded(daemon.sender_options({a.uri()}));
  for (int i = 0; i < 6; ++i) stranded.call_async(daemon.address("test.sleep"), "[1]");
  std::this_thread::sleep_for(300ms);
  mark(stats);
  // A: the node the sender, the stranded caller and the first worker use.
  LogWatch watch(daemon);
  const auto killed_at = Clock::now();
  a.kill();
  caller.join();
  const double window_s = seconds_since(killed_at);
  // Connections the workers made after the kill (only A's worker should
  // have to reconnect, once A is back: it is not).
  const std::size_t connects_after_kill = count_of(watch.since(), "connected to ");
  const std::size_t closed_by_broker = count_of(watch.since(), "broker closed the connection");
  // RabbitMQ 3.10 crashes the channel that publishes to a direct reply-to
  // address of a channel on a node that is down (rabbit_channel:deliver_reply,
  // case_clause), and closes the connection with INTERNAL_ERROR.
  const std::size_t reply_to_crashes = count_of(b.log(), "deliver_reply") + count_of(c.log(), "deliver_reply");

  std::optional<double> first_after;
  {
    std::lock_guard<std::mutex> lock(stats.mutex);
    first_after = stats.first_success_after_mark_s;
  }
  print_figures("quorum cluster, node A SIGKILLed, retry 2",
                {{"cluster_setup_s", fixed(boot_s, 1)},
                 {"attempted", std::to_string(stats.attempted)},
                 {"succeeded", std::to_string(stats.succeeded)},
                 {"failed", std::to_string(stats.failed)},
                 {"lost", std::to_string(stats.attempted - stats.succeeded)},
                 {"succeeded_before_kill", std::to_string(before_kill)},
                 {"succeeded_after_kill", std::to_string(stats.succeeded_after_mark)},
                 {"longest_call_s", fixed(stats.longest_us / 1e6)},
                 {"seconds_to_recover", first_after ? fixed(*first_after) : "never"},
                 {"seconds_after_kill", fixed(window_s, 1)},
                 {"worker_connects_after_kill", std::to_string(connects_after_kill)},
                 {"connections_closed_by_broker", std::to_string(closed_by_broker)},
                 {"deliver_reply_crash_lines_in_B_C_logs", std::to_string(reply_to_crashes)}});
  INFO("errors:" << errors_text(stats));
  if (stats.failed > 0) {
    const ProcessResult queues =
        b.ctl({"-q", "list_queues", "name", "leader", "consumers", "messages_ready", "messages_unacknowledged"});
    const ProcessResult consumers = b.ctl({"-q", "list_consumers"});
    std::cout << "[fault]   after the kill, queues:\n"
              << queues.out << "[fault]   consumers:\n"
              << consumers.out << "sbusd log (last 40 lines):\n"
              << tail_lines(daemon.log(), 40) << std::endl;
  }
  REQUIRE(started);
  CHECK(stats.failed == 0);
  CHECK(stats.succeeded_after_mark >= 1000);
  // A worker whose connection the broker closes right after connecting
  // backs off (100 ms doubling) instead of reconnecting at once.
  CHECK(connects_after_kill <= 30);
}

}  // namespace sbus_test

namespace sbus_test {
namespace {

// Puts a broker's memory watermark back to RabbitMQ's default when the test
// ends, also when it fails half-way.
class WatermarkRestore {
 public:
  explicit WatermarkRestore(const Broker& broker) : broker_(broker) {}
  ~WatermarkRestore() { broker_.ctl({"set_vm_memory_high_watermark", "0.4"}); }
  WatermarkRestore(const WatermarkRestore&) = delete;
  WatermarkRestore& operator=(const WatermarkRestore&) = delete;

 private:
  const Broker& broker_;
};

}  // namespace

TEST_CASE("with the first broker frozen by SIGSTOP, sbus call through both brokers answers well under a second",
          "[fault]") {
  // A: a private node, frozen; B: the fixture's broker, where the node is
  // served. A frozen broker's kernel still completes the TCP connect: only
  // the AMQP handshake hangs.
  Broker a("frozen");
  a.start();
  Daemon daemon({broker_uri()}, "");
  daemon.wait_ready();
  a.signal(SIGSTOP);
  std::vector<double> seconds;
  std::vector<ProcessResult> results;
  for (int i = 0; i < 3; ++i) {
    const auto started = Clock::now();
    results.push_back(run_cli({"call", daemon.address("math.add"), "[1, 2]", "--timeout", "5", "--broker", a.uri(),
                               "--broker", broker_uri(), "--secret-file", daemon.secret_file()},
                              20s));
    seconds.push_back(seconds_since(started));
  }
  a.signal(SIGCONT);
  print_figures("first broker frozen (SIGSTOP), sbus call with both", {{"call_1_s", fixed(seconds[0])},
                                                                       {"call_2_s", fixed(seconds[1])},
                                                                       {"call_3_s", fixed(seconds[2])},
                                                                       {"connect_timeout_s", "3"}});
  for (std::size_t i = 0; i < results.size(); ++i) {
    INFO("call " << i + 1 << ": exit " << results[i].exit_code << ", out " << results[i].out << ", err "
                 << results[i].err);
    CHECK(results[i].exit_code == 0);
    CHECK(trimmed(results[i].out) == "3");
    // The head start is 0.25 s; a process start and a call add little.
    CHECK(seconds[i] < 1.0);
  }
}

TEST_CASE(
    "a broker under a memory alarm: callers hear 'broker blocked', sbusd logs and counts the block, nothing is lost",
    "[fault]") {
  // The alarm on a private node; the fixture's broker as the second,
  // where the node is served too.
  Broker broker("alarm");
  broker.start();
  Daemon daemon({broker.uri(), broker_uri()}, kPingYaml);
  daemon.wait_ready();
  sbus::Sender stats_sender(daemon.sender_options({broker.uri()}));
  REQUIRE(add_ok(stats_sender, daemon, 1, 2, 5s));

  LogWatch watch(daemon);
  const WatermarkRestore restore(broker);
  REQUIRE(broker.ctl({"set_vm_memory_high_watermark", "absolute", "1"}).exit_code == 0);
  const bool alarm = wait_until(
      [&] {
        return broker.ctl({"-q", "eval", "rabbit_alarm:get_alarms()."}).out.find("memory") != std::string::npos;
      },
      30s, 200ms);
  REQUIRE(alarm);
  const auto alarm_at = Clock::now();

  // Callers that wait long enough: a call and a message sent during the
  // alarm both arrive once it clears.
  std::optional<sbus::CallResult> late_result;
  std::string late_error;
  std::thread late_call([&] {
    try {
      sbus::Sender sender(daemon.sender_options({broker.uri()}));
      late_result = sender.call(daemon.address("math.add"), "[20, 22]", 60s);
    } catch (const std::exception& e) {
      late_error = e.what();
    }
  });
  // A caller with a short timeout learns why it gets no answer.
  const auto cli_started = Clock::now();
  const ProcessResult blocked_call = run_cli({"call", daemon.address("math.add"), "[2, 3]", "--timeout", "2",
                                              "--broker", broker.uri(), "--secret-file", daemon.secret_file()},
                                             20s);
  const double cli_s = seconds_since(cli_started);
  // The same with --json: the error line names the block.
  const ProcessResult blocked_json = run_cli({"call", daemon.address("math.add"), "[2, 3]", "--timeout", "2", "--json",
                                              "--broker", broker.uri(), "--secret-file", daemon.secret_file()},
                                             20s);
  // A call that may run twice (--retry) and a message go to the second
  // broker at once.
  const auto retry_started = Clock::now();
  const ProcessResult retried_call =
      run_cli({"call", daemon.address("math.add"), "[3, 4]", "--timeout", "5", "--retry", "1", "--broker", broker.uri(),
               "--broker", broker_uri(), "--secret-file", daemon.secret_file()},
              20s);
  const double retry_s = seconds_since(retry_started);
  const auto failover_send_started = Clock::now();
  const ProcessResult failover_send =
      run_cli({"send", daemon.address("test.record"), "[\"sent to the other broker\"]", "--broker", broker.uri(),
               "--broker", broker_uri(), "--secret-file", daemon.secret_file()},
              20s);
  const double failover_send_s = seconds_since(failover_send_started);
  const bool logged_block = wait_until([&] { return watch.seen("blocked this connection"); }, 10s, 50ms);
  // The message is sent late in the alarm: its sender waits for the confirm
  // at most 10 s, and the steps above take longer than that on a loaded
  // machine.
  std::string send_error = "not done";
  std::thread late_send([&] {
    try {
      sbus::Sender sender(daemon.sender_options({broker.uri()}));
      sender.send(daemon.address("test.record"), "[\"sent during the alarm\"]");
      send_error.clear();
    } catch (const std::exception& e) {
      send_error = e.what();
    }
  });
  // Longer than ping_interval + ping_timeout: a blocked broker is not taken
  // for a hung one.
  std::this_thread::sleep_until(std::max(alarm_at + 3s, Clock::now()));
  const auto clearing_at = Clock::now();
  REQUIRE(broker.ctl({"set_vm_memory_high_watermark", "0.4"}).exit_code == 0);
  const double clear_ctl_s = seconds_since(clearing_at);
  const auto cleared_at = Clock::now();
  late_call.join();
  late_send.join();
  const double late_s = seconds_since(cleared_at);
  const double alarm_s = seconds_since(alarm_at);
  const bool recorded = wait_until(
      [&] { return read_file(daemon.record_file()).find("sent during the alarm") != std::string::npos; }, 10s);
  const bool recorded_elsewhere = read_file(daemon.record_file()).find("sent to the other broker") != std::string::npos;
  const bool logged_unblock = wait_until([&] { return watch.seen("unblocked this connection"); }, 10s, 50ms);
  const sbus::CallResult stats = stats_sender.call(daemon.address("sbus.stats"), "[]", 10s);
  const ProcessResult stats_table =
      run_cli({"stats", daemon.node(), "--broker", broker.uri(), "--secret-file", daemon.secret_file()}, 20s);

  print_figures("memory alarm", {{"cli_exit", std::to_string(blocked_call.exit_code)},
                                 {"cli_s", fixed(cli_s)},
                                 {"retry_cli_exit", std::to_string(retried_call.exit_code)},
                                 {"retry_cli_s", fixed(retry_s)},
                                 {"send_both_brokers_exit", std::to_string(failover_send.exit_code)},
                                 {"send_both_brokers_s", fixed(failover_send_s)},
                                 {"clear_ctl_s", fixed(clear_ctl_s)},
                                 {"late_call_answered_s_after_clear", fixed(late_s)},
                                 {"alarm_s", fixed(alarm_s)},
                                 {"message_recorded", recorded ? "yes" : "no"}});
  INFO("cli err: " << blocked_call.err << "\nlate call error: " << late_error << "\nsend error: " << send_error
                   << "\nstats: " << stats.message << "\nsbusd log since the alarm:\n"
                   << watch.since());
  CHECK(blocked_call.exit_code == 3);
  CHECK(blocked_call.err.find("broker blocked: ") != std::string::npos);
  CHECK(blocked_call.err.find("no reply") != std::string::npos);
  INFO("--json: " << blocked_json.out << blocked_json.err);
  CHECK(blocked_json.exit_code == 3);
  CHECK(blocked_json.out.empty());
  CHECK(blocked_json.err.rfind(R"({"error":{"code":"blocked","message":")", 0) == 0);
  CHECK(blocked_json.err.find(R"("exit":3,"exit_name":"timeout")") != std::string::npos);
  INFO("retried call: " << retried_call.out << retried_call.err << "\nsend: " << failover_send.out
                        << failover_send.err);
  CHECK(retried_call.exit_code == 0);
  CHECK(trimmed(retried_call.out) == "7");
  // Without failing over on the block notice, the call would wait for the
  // 1 s confirm before trying the second broker.
  CHECK(retry_s < 0.8);
  CHECK(failover_send.exit_code == 0);
  CHECK(failover_send_s < 3.0);
  CHECK(recorded_elsewhere);
  REQUIRE(late_result.has_value());
  CHECK(late_result->message == "42");
  CHECK(send_error.empty());
  CHECK(recorded);
  CHECK(logged_block);
  CHECK(logged_unblock);
  CHECK(!watch.seen("reconnecting"));
  CHECK(stats.message.find("\"blocked\":false") != std::string::npos);
  CHECK(stats.message.find("\"blocks\":0") == std::string::npos);
  INFO("sbus stats: " << stats_table.out << stats_table.err);
  CHECK(stats_table.out.find("blocked by the broker (resource alarm) ") != std::string::npos);
}

}  // namespace sbus_test
