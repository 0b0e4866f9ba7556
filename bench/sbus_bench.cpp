// sbus-bench: sbusd beside the rabbitmq-c floor, on one broker, in one run.
//
//   sbus-bench --port PORT [--quick] [--soak] [--runs N] [--seconds S] [--soak-calls N]
//              [--startup-runs N] [--sbusd PATH] [--plugin-dir DIR] [--floor PATH]
//
// The default run takes about four minutes: 15 runs of 1 s of each load
// pattern per system, and a soak of 200,000 calls for RSS growth. --soak
// makes the soak the 1,000,000 calls (one to two minutes more);
// --quick is the test suite's short run (figures printed, not asserted).
//
// Starts the floor server (sbus-bench-floor) and sbusd with the example
// plugins against the broker on 127.0.0.1:PORT, drives both with the same
// load patterns, run by run in turn (floor then sbus, then sbus then floor,
// so both see the same machine and neither always goes first), and prints
// one table: the median of the runs of each figure,
// and sbus's ratio to the floor beside it. `scripts/bench` starts a private
// broker and runs it. Progress goes to stderr, the table to stdout.
//
//   sbus-bench caller floor|sbus PORT TARGET FILE SECONDS
//
// is one of the concurrent caller processes (the benchmark starts them
// itself): TARGET is the floor's queue or an sbus address, FILE the body of
// the floor's calls or the secret file.
//
//   sbus-bench load PORT ADDRESS SECRET_FILE CALLS DEPTH [no-deadline]
//   sbus-bench load PORT floor:QUEUE BODY_FILE CALLS DEPTH
//
// makes CALLS calls to a running sbusd (or floor server), DEPTH in flight,
// and prints the rate: a fixed load to profile the server under (perf,
// strace -c, callgrind). no-deadline: sbus's calls without their deadline
// (SenderOptions::send_deadline off), to time against them.
#include <amqp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sbus/sender.hpp>

#include "child_process.hpp"
#include "drivers.hpp"
#include "floor_client.hpp"
#include "proc_stats.hpp"
#include "raw_amqp.hpp"
#include "run_stats.hpp"
#include "sbus_client.hpp"

namespace bench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The call every RPC figure makes, and what it answers.
constexpr const char* kParams = "[1,2]";
constexpr const char* kSum = "3";
constexpr int kFanOutServices = 8;
constexpr int kCallerProcesses = 16;

enum class System { kFloor, kSbus };
const char* name_of(System system) {
  return system == System::kFloor ? "floor" : "sbus";
}

struct Options {
  int port = 0;
  bool quick = false;
  // Many short runs rather than a few long ones: a slow spell of a shared
  // VM lasts seconds and lands in one or two 1 s runs of one side, which
  // the median of fifteen stands through; in a 3 s run of five it moved
  // the median (sequential ratios of 0.79 to 0.94 of one build).
  int runs = 15;
  double seconds = 1.0;
  // RSS after the first 10,000 calls against after this many.
  std::uint64_t soak_calls = 200000;
  int startup_runs = 5;
  int warmup_calls = 200;  // before each measured run
  std::string sbusd;
  std::string plugin_dir;
  std::string floor;
};

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "sbus-bench: " << problem
            << "\nusage: sbus-bench --port PORT [--quick] [--soak] [--runs N] [--seconds S] [--soak-calls N]\n"
               "                  [--startup-runs N] [--sbusd PATH] [--plugin-dir DIR] [--floor PATH]\n";
  std::exit(2);
}

std::string self_dir() {
  return fs::read_symlink("/proc/self/exe").parent_path().string();
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_text(const std::string& path, const std::string& text, mode_t mode = 0644) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot write " + path);
}

bool write_all(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool read_all(int fd, void* data, std::size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

sbus::SenderOptions sender_options(int port, const std::string& secret) {
  sbus::SenderOptions options;
  options.brokers = {"amqp://guest:guest@127.0.0.1:" + std::to_string(port) + "/%2f"};
  options.secret = secret;
  return options;
}

std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  return text;
}

// What a caller process reports, followed by `latencies` uint64 values.
struct CallerHeader {
  std::uint64_t calls = 0;
  std::uint64_t errors = 0;
  double seconds = 0;
  std::uint64_t latencies = 0;
};

// A caller process: connects, warms up, says 'R', waits for any byte on
// stdin, calls sequentially for SECONDS, writes its CallerHeader and
// latencies to stdout.
int caller_main(int argc, char** argv) {
  if (argc != 7) {
    std::cerr << "usage: sbus-bench caller floor|sbus PORT TARGET FILE SECONDS\n";
    return 2;
  }
  const std::string system = argv[2];
  const int port = std::atoi(argv[3]);
  const std::string target = argv[4];
  const std::string file = argv[5];
  const std::chrono::duration<double> duration(std::strtod(argv[6], nullptr));
  try {
    auto serve = [&](auto& client) {
      for (int i = 0; i < 20; ++i) client.roundtrip(kReplyTimeout);
      char byte = 'R';
      if (!write_all(STDOUT_FILENO, &byte, 1) || !read_all(STDIN_FILENO, &byte, 1)) return 1;
      RunStats stats = run_sequential(client, duration);
      CallerHeader header{stats.calls, 0, stats.seconds, stats.latencies_ns.size()};
      if constexpr (requires { client.errors(); }) header.errors = client.errors();
      const bool ok =
          write_all(STDOUT_FILENO, &header, sizeof(header)) &&
          write_all(STDOUT_FILENO, stats.latencies_ns.data(), stats.latencies_ns.size() * sizeof(std::uint64_t));
      return ok ? 0 : 1;
    };
    if (system == "floor") {
      FloorClient client(port, target, read_text(file));
      return serve(client);
    }
    SbusClient client(sender_options(port, trim(read_text(file))), {target}, kParams, kSum);
    return serve(client);
  } catch (const std::exception& e) {
    std::cerr << "sbus-bench caller (" << system << "): " << e.what() << "\n";
    return 1;
  }
}

int load_main(int argc, char** argv) {
  const bool no_deadline = argc == 8 && std::string(argv[7]) == "no-deadline";
  if (argc != 7 && !no_deadline) {
    std::cerr << "usage: sbus-bench load PORT ADDRESS|floor:QUEUE SECRET_FILE|BODY_FILE CALLS DEPTH [no-deadline]\n";
    return 2;
  }
  const int port = std::atoi(argv[2]);
  const std::string target = argv[3];
  const std::uint64_t calls = std::strtoull(argv[5], nullptr, 10);
  const int depth = std::atoi(argv[6]);
  auto drive = [&](auto& client) {
    RunStats stats;
    if (depth > 1) {
      stats = run_pipelined(client, depth, std::chrono::hours(24), calls);
    } else {
      const auto start = Clock::now();
      for (std::uint64_t i = 0; i < calls; ++i) stats.latencies_ns.push_back(client.roundtrip(kReplyTimeout));
      stats.calls = calls;
      stats.seconds = seconds_between(start, Clock::now());
    }
    std::printf("%llu calls in %.2f s: %.0f calls/s, p50 %.0f us, p99 %.0f us\n",
                static_cast<unsigned long long>(stats.calls), stats.seconds, stats.rate(), stats.latency_us(0.5),
                stats.latency_us(0.99));
  };
  try {
    if (target.rfind("floor:", 0) == 0) {
      FloorClient client(port, target.substr(6), read_text(argv[4]));
      drive(client);
      return 0;
    }
    sbus::SenderOptions options = sender_options(port, trim(read_text(argv[4])));
    options.send_deadline = !no_deadline;
    SbusClient client(options, {target}, kParams, kSum);
    drive(client);
    if (client.errors() > 0)
      std::printf("%llu errors (%s)\n", static_cast<unsigned long long>(client.errors()), client.last_error().c_str());
    return client.errors() == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "sbus-bench load: " << e.what() << "\n";
    return 1;
  }
}

// One figure of the table: its value in each run for each system, and the
// target it is held to.
struct Row {
  std::string label;
  std::string unit;
  int decimals = 0;
  std::vector<double> floor;
  std::vector<double> sbus;
  // Targets: sbus/floor at least `min_ratio` or at most `max_ratio`; the
  // sbus value at most `max_value`.
  std::optional<double> min_ratio;
  std::optional<double> max_ratio;
  std::optional<double> max_value;
  bool section = false;  // a heading line only
};

class Bench {
 public:
  explicit Bench(Options options) : options_(std::move(options)) {}
  ~Bench() { cleanup(); }
  Bench(const Bench&) = delete;
  Bench& operator=(const Bench&) = delete;

  void run();

 private:
  // Set-up and tear-down.
  void prepare();
  void cleanup();
  // `policy_rules` > 0: a policy of that many rules, of which only the last
  // lets the calls in (what a policy costs per call).
  std::string write_config(const std::string& node, const std::string& name, int policy_rules = 0) const;
  std::string capture_body();
  pid_t start_floor(const std::string& queue);
  pid_t start_sbusd(const std::string& config, const std::string& notify_socket = {});
  void wait_drained(const std::string& queue);

  // Measurement.
  double server_cpu(System system) const;
  long server_switches(System system) const;
  pid_t sbus_worker() const;
  template <class F>
  RunStats timed(System system, F&& run);
  // `measure(system)` once per run per system, floor and sbus in turn.
  std::map<System, std::vector<RunStats>> repeat(const std::string& what,
                                                 const std::function<RunStats(System)>& measure);
  RunStats run_callers(System system, int processes);
  RunStats run_senders(System system, int threads);
  void measure_startup();

  // Report.
  Row& add(std::string label, std::string unit, int decimals);
  void section(std::string heading);
  void add_rpc_rows(const std::string& what, std::map<System, std::vector<RunStats>>& runs, bool tail);
  void print_table();

  Options options_;
  std::chrono::duration<double> run_length_{};
  std::string dir_;
  std::string secret_;
  std::string secret_file_;
  std::string body_file_;
  std::string body_;
  std::string node_;
  std::string floor_queue_;
  std::unique_ptr<RawConnection> admin_;
  std::vector<std::string> queues_;  // to delete at the end
  pid_t floor_pid_ = -1;
  pid_t sbusd_pid_ = -1;
  std::unique_ptr<FloorClient> floor_client_;
  std::unique_ptr<SbusClient> sbus_client_;
  std::unique_ptr<SbusClient> fanout_client_;
  // The same calls as sbus_client_'s, without their deadline
  // (SenderOptions::send_deadline off): what deadlines cost.
  std::unique_ptr<SbusClient> no_deadline_client_;
  // A second sbusd with a 50-rule policy, run only for its pair of runs.
  pid_t policy_pid_ = -1;
  std::unique_ptr<SbusClient> policy_client_;
  std::deque<Row> rows_;  // a deque: add() hands out references that must stay valid
  std::uint64_t sbus_errors_ = 0;
  std::string broker_version_;
};

void Bench::prepare() {
  run_length_ = std::chrono::duration<double>(options_.seconds);
  char pattern[] = "/tmp/sbus-bench.XXXXXX";
  if (mkdtemp(pattern) == nullptr) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  dir_ = pattern;
  secret_ = "sbus bench secret";
  secret_file_ = dir_ + "/secret";
  write_text(secret_file_, secret_ + "\n", 0600);
  node_ = "bench-" + std::to_string(getpid());
  floor_queue_ = "bench-floor-" + std::to_string(getpid());

  admin_ = std::make_unique<RawConnection>(options_.port);
  const amqp_table_t* server = amqp_get_server_properties(admin_->get());
  for (int i = 0; server != nullptr && i < server->num_entries; ++i) {
    if (text(server->entries[i].key) == "version" && server->entries[i].value.kind == AMQP_FIELD_KIND_UTF8) {
      broker_version_ = text(server->entries[i].value.value.bytes);
    }
  }
  body_ = capture_body();
  body_file_ = dir_ + "/body";
  write_text(body_file_, body_);
}

void Bench::cleanup() {
  floor_client_.reset();
  sbus_client_.reset();
  fanout_client_.reset();
  no_deadline_client_.reset();
  policy_client_.reset();
  if (policy_pid_ > 0) stop_process(policy_pid_, 15s);
  policy_pid_ = -1;
  if (sbusd_pid_ > 0) stop_process(sbusd_pid_, 15s);
  if (floor_pid_ > 0) stop_process(floor_pid_, 5s);
  sbusd_pid_ = floor_pid_ = -1;
  if (admin_) {
    for (const std::string& queue : queues_) {
      try {
        admin_->delete_queue(queue);
      } catch (const std::exception& e) {
        std::cerr << "sbus-bench: " << e.what() << "\n";
        break;
      }
    }
    admin_.reset();
  }
  queues_.clear();
  if (!dir_.empty() && std::getenv("SBUS_BENCH_KEEP") == nullptr) {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  dir_.clear();
}

std::string Bench::write_config(const std::string& node, const std::string& name, int policy_rules) const {
  std::ostringstream yaml;
  yaml << "node: " << node << "\n"
       << "brokers:\n  - amqp://guest:guest@127.0.0.1:" << options_.port << "/%2f\n"
       << "secret_file: " << secret_file_ << "\n"
       << "plugin_dir: " << options_.plugin_dir << "\n"
       << "prefetch: 64\n"
       << "services:\n"
       << "  - name: math.add\n    plugin: math\n"
       << "  - name: test.echo\n    plugin: test\n";
  for (int i = 0; i < kFanOutServices; ++i) {
    yaml << "  - name: bench.echo" << i << "\n    plugin: test\n    export: echo\n";
  }
  // A message service that does nothing: what `send` is measured against.
  yaml << "  - name: bench.sink\n    plugin: test\n    export: echo\n    kind: message\n";
  if (policy_rules > 0) yaml << "policy:\n";
  for (int i = 1; i < policy_rules; ++i) {
    yaml << "  - " << (i % 5 == 0 ? "deny" : "allow") << ": {callers: [\"team" << i
         << "-*\"], services: [\"bench.*\", \"svc" << i << ".*\"]}\n";
  }
  if (policy_rules > 0) yaml << "  - allow: {callers: [\"py-*\"], services: [\"math.*\", \"test.*\"]}\n";
  const std::string path = dir_ + "/" + name + ".yaml";
  write_text(path, yaml.str());
  return path;
}

// The body of an sbus math.add call exactly as sbus::Sender writes it: the
// floor's calls carry the same bytes.
std::string Bench::capture_body() {
  const std::string queue = "bench-capture-" + std::to_string(getpid());
  admin_->declare_node_queue(queue);
  sbus::Sender sender(sender_options(options_.port, secret_));
  sender.call_async(queue + ".math.add", kParams);
  const auto deadline = Clock::now() + 5s;
  std::string body;
  while (body.empty()) {
    if (Clock::now() > deadline) throw std::runtime_error("no call to capture in " + queue);
    amqp_rpc_reply_t reply = amqp_basic_get(admin_->get(), kRpcChannel, bytes(queue), 1);
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) throw std::runtime_error("basic.get: " + describe(reply));
    if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) {
      std::this_thread::sleep_for(2ms);
      continue;
    }
    amqp_message_t message;
    reply = amqp_read_message(admin_->get(), kRpcChannel, &message, 0);
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) throw std::runtime_error("read message: " + describe(reply));
    body = text(message.body);
    amqp_destroy_message(&message);
  }
  admin_->delete_queue(queue);
  return body;
}

pid_t Bench::start_floor(const std::string& queue) {
  const int log = ::open((dir_ + "/floor.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  SpawnOptions spawn_options;
  spawn_options.args = {options_.floor, std::to_string(options_.port), queue, "64"};
  spawn_options.stdout_fd = spawn_options.stderr_fd = log;
  const pid_t pid = spawn(spawn_options);
  ::close(log);
  return pid;
}

pid_t Bench::start_sbusd(const std::string& config, const std::string& notify_socket) {
  const int log = ::open((dir_ + "/sbusd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  SpawnOptions spawn_options;
  spawn_options.args = {options_.sbusd, "--config", config};
  if (!notify_socket.empty()) spawn_options.env = {"NOTIFY_SOCKET=" + notify_socket};
  spawn_options.stdout_fd = spawn_options.stderr_fd = log;
  const pid_t pid = spawn(spawn_options);
  ::close(log);
  return pid;
}

// Waits until `queue` holds no message (what a send run left is consumed),
// so that the next run does not pay for it.
void Bench::wait_drained(const std::string& queue) {
  const auto deadline = Clock::now() + 60s;
  for (;;) {
    amqp_queue_declare_ok_t* ok =
        amqp_queue_declare(admin_->get(), kRpcChannel, bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    admin_->check("passive declare " + queue);
    if (ok->message_count == 0 || Clock::now() > deadline) return;
    std::this_thread::sleep_for(5ms);
  }
}

double Bench::server_cpu(System system) const {
  return system == System::kFloor ? cpu_seconds(floor_pid_) : tree_cpu_seconds(sbusd_pid_);
}

long Bench::server_switches(System system) const {
  return system == System::kFloor ? voluntary_switches(floor_pid_) : tree_voluntary_switches(sbusd_pid_);
}

pid_t Bench::sbus_worker() const {
  std::vector<pid_t> workers = children_of(sbusd_pid_);
  return workers.empty() ? -1 : workers.front();
}

template <class F>
RunStats Bench::timed(System system, F&& run) {
  const double before = server_cpu(system);
  const long switches_before = server_switches(system);
  RunStats stats = run();
  stats.cpu_seconds = server_cpu(system) - before;
  stats.switches = server_switches(system) - switches_before;
  return stats;
}

std::map<System, std::vector<RunStats>> Bench::repeat(const std::string& what,
                                                      const std::function<RunStats(System)>& measure) {
  std::map<System, std::vector<RunStats>> runs;
  std::cerr << "sbus-bench: " << what << ":";
  for (int run = 0; run < options_.runs; ++run) {
    const bool floor_first = run % 2 == 0;
    for (System system : {floor_first ? System::kFloor : System::kSbus, floor_first ? System::kSbus : System::kFloor}) {
      RunStats stats = measure(system);
      std::cerr << " " << name_of(system) << " " << static_cast<long>(stats.rate()) << "/s";
      if (system == System::kSbus) sbus_errors_ += stats.errors;
      if (stats.errors > 0) std::cerr << " (" << stats.errors << " errors)";
      runs[system].push_back(std::move(stats));
    }
  }
  std::cerr << "\n";
  return runs;
}

RunStats Bench::run_callers(System system, int processes) {
  struct Caller {
    pid_t pid = -1;
    int to = -1;    // its stdin
    int from = -1;  // its stdout
  };
  std::vector<Caller> callers;
  auto end_all = [&callers] {
    for (Caller& caller : callers) {
      if (caller.to >= 0) ::close(caller.to);
      if (caller.from >= 0) ::close(caller.from);
      if (caller.pid > 0) stop_process(caller.pid, 2s);
    }
  };
  try {
    const std::string target = system == System::kFloor ? floor_queue_ : node_ + ".math.add";
    const std::string file = system == System::kFloor ? body_file_ : secret_file_;
    char length[32];
    std::snprintf(length, sizeof(length), "%.3f", run_length_.count());
    for (int i = 0; i < processes; ++i) {
      int in[2];
      int out[2];
      if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
      SpawnOptions spawn_options;
      spawn_options.args = {fs::read_symlink("/proc/self/exe").string(),
                            "caller",
                            name_of(system),
                            std::to_string(options_.port),
                            target,
                            file,
                            length};
      spawn_options.stdin_fd = in[0];
      spawn_options.stdout_fd = out[1];
      Caller caller;
      caller.pid = spawn(spawn_options);
      ::close(in[0]);
      ::close(out[1]);
      caller.to = in[1];
      caller.from = out[0];
      callers.push_back(caller);
    }
    for (Caller& caller : callers) {
      pollfd fd{caller.from, POLLIN, 0};
      char byte = 0;
      if (::poll(&fd, 1, 30000) != 1 || !read_all(caller.from, &byte, 1) || byte != 'R') {
        throw std::runtime_error("a caller process did not get ready");
      }
    }
    RunStats total = timed(system, [&] {
      for (Caller& caller : callers) {
        char go = 'G';
        write_all(caller.to, &go, 1);
      }
      RunStats merged;
      for (Caller& caller : callers) {
        CallerHeader header;
        if (!read_all(caller.from, &header, sizeof(header))) throw std::runtime_error("a caller process failed");
        RunStats stats;
        stats.calls = header.calls;
        stats.errors = header.errors;
        stats.seconds = header.seconds;
        stats.latencies_ns.resize(header.latencies);
        if (!read_all(caller.from, stats.latencies_ns.data(), header.latencies * sizeof(std::uint64_t))) {
          throw std::runtime_error("a caller process failed");
        }
        merged.merge(std::move(stats));
      }
      return merged;
    });
    end_all();
    return total;
  } catch (...) {
    end_all();
    throw;
  }
}

RunStats Bench::run_senders(System system, int threads) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<bool> failed{false};
  std::vector<RunStats> results(static_cast<std::size_t>(threads));
  std::vector<std::string> errors(static_cast<std::size_t>(threads));
  const auto length = run_length_;
  auto body = [&](int index) {
    auto send_loop = [&](auto& client) {
      client.send_confirmed();  // connects
      ++ready;
      while (!go.load()) {
        if (failed.load()) return;
        std::this_thread::sleep_for(1ms);
      }
      RunStats& stats = results[static_cast<std::size_t>(index)];
      const auto start = Clock::now();
      const auto end = start + std::chrono::duration_cast<Clock::duration>(length);
      auto now = start;
      while (now < end) {
        client.send_confirmed();
        const auto done = Clock::now();
        stats.latencies_ns.push_back(
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(done - now).count()));
        ++stats.calls;
        now = done;
      }
      stats.seconds = seconds_between(start, now);
    };
    try {
      if (system == System::kFloor) {
        FloorClient client(options_.port, floor_queue_, body_);
        send_loop(client);
      } else {
        SbusClient client(sender_options(options_.port, secret_), {}, kParams, {}, node_ + ".bench.sink");
        send_loop(client);
      }
    } catch (const std::exception& e) {
      errors[static_cast<std::size_t>(index)] = e.what();
      failed = true;
      ++ready;
    }
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back(body, i);
  while (ready.load() < threads) std::this_thread::sleep_for(1ms);
  RunStats total = timed(system, [&] {
    go = true;
    for (std::thread& thread : pool) thread.join();
    RunStats merged;
    for (RunStats& stats : results) merged.merge(std::move(stats));
    return merged;
  });
  for (const std::string& error : errors) {
    if (!error.empty()) throw std::runtime_error(std::string(name_of(system)) + " sender: " + error);
  }
  wait_drained(system == System::kFloor ? floor_queue_ : node_);
  return total;
}

void Bench::measure_startup() {
  Row& first_call = add("start-up: exec to first call served", "ms", 1);
  first_call.max_value = 100;
  Row& ready = add("start-up: exec to READY=1 (sd_notify)", "ms", 1);
  std::cerr << "sbus-bench: start-up:";
  for (int run = 0; run < options_.startup_runs; ++run) {
    // The floor: a fresh queue, declared first so the call waits in it.
    {
      const std::string queue = floor_queue_ + "-start" + std::to_string(run);
      admin_->declare_node_queue(queue);
      queues_.push_back(queue);
      FloorClient client(options_.port, queue, body_);
      const auto start = Clock::now();
      const pid_t pid = start_floor(queue);
      client.roundtrip(kReplyTimeout);
      first_call.floor.push_back(seconds_between(start, Clock::now()) * 1000);
      stop_process(pid, 5s);
      std::cerr << " floor " << first_call.floor.back() << " ms";
    }
    {
      const std::string node = node_ + "-start" + std::to_string(run);
      const std::string config = write_config(node, "start" + std::to_string(run));
      // Both of its queues exist, as on any restart: creating a durable
      // queue is the broker's work, not sbusd's.
      admin_->declare_node_queue(node);
      admin_->declare_queue(node + ".error");
      queues_.push_back(node);
      queues_.push_back(node + ".error");
      const std::string socket_path = dir_ + "/notify" + std::to_string(run);
      const int notify = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      sockaddr_un address{};
      address.sun_family = AF_UNIX;
      std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", socket_path.c_str());
      if (notify < 0 || ::bind(notify, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        throw std::runtime_error("cannot bind " + socket_path + ": " + std::strerror(errno));
      }
      std::optional<Clock::time_point> ready_at;
      const auto start = Clock::now();
      std::thread listener([notify, &ready_at, start] {
        char buffer[4096];
        for (;;) {
          pollfd fd{notify, POLLIN, 0};
          const auto left = 15000 - std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
          if (left <= 0 || ::poll(&fd, 1, static_cast<int>(left)) != 1) return;
          const ssize_t n = ::recv(notify, buffer, sizeof(buffer), 0);
          if (n <= 0) return;
          const std::string message(buffer, static_cast<std::size_t>(n));
          if (message == "READY=1" || message.rfind("READY=1\n", 0) == 0 ||
              message.find("\nREADY=1") != std::string::npos) {
            ready_at = Clock::now();
            return;
          }
        }
      });
      const pid_t pid = start_sbusd(config, socket_path);
      try {
        sbus_client_->sender().call(node + ".math.add", kParams, kReplyTimeout);
      } catch (...) {
        listener.join();
        ::close(notify);
        stop_process(pid, 10s);
        throw;
      }
      first_call.sbus.push_back(seconds_between(start, Clock::now()) * 1000);
      listener.join();
      ::close(notify);
      if (ready_at) ready.sbus.push_back(seconds_between(start, *ready_at) * 1000);
      stop_process(pid, 15s);
      std::cerr << " sbus " << first_call.sbus.back() << " ms";
    }
  }
  std::cerr << "\n";
}

Row& Bench::add(std::string label, std::string unit, int decimals) {
  Row row;
  row.label = std::move(label);
  row.unit = std::move(unit);
  row.decimals = decimals;
  rows_.push_back(std::move(row));
  return rows_.back();
}

void Bench::section(std::string heading) {
  Row& row = add(std::move(heading), "", 0);
  row.section = true;
}

// calls/s and latency rows for an RPC load pattern.
void Bench::add_rpc_rows(const std::string& what, std::map<System, std::vector<RunStats>>& runs, bool tail) {
  Row& rate = add(what + ", calls/s", "", 0);
  Row& p50 = add("  p50 latency", "us", 0);
  Row& p99 = add("  p99 latency", "us", 0);
  Row* p999 = tail ? &add("  p99.9 latency", "us", 0) : nullptr;
  for (System system : {System::kFloor, System::kSbus}) {
    for (RunStats& stats : runs[system]) {
      auto column = [&](Row& row) -> std::vector<double>& { return system == System::kFloor ? row.floor : row.sbus; };
      column(rate).push_back(stats.rate());
      column(p50).push_back(stats.latency_us(0.50));
      column(p99).push_back(stats.latency_us(0.99));
      if (p999 != nullptr) column(*p999).push_back(stats.latency_us(0.999));
    }
  }
}

void Bench::run() {
  prepare();

  // The floor server and sbusd both run from here on: the one not driven
  // is idle (sbusd's ping watcher: one probe every 2 s).
  admin_->declare_node_queue(floor_queue_);
  queues_.push_back(floor_queue_);
  floor_pid_ = start_floor(floor_queue_);
  admin_->declare_node_queue(node_);
  queues_.push_back(node_);
  queues_.push_back(node_ + ".error");
  sbusd_pid_ = start_sbusd(write_config(node_, "sbusd"));

  floor_client_ = std::make_unique<FloorClient>(options_.port, floor_queue_, body_);
  sbus_client_ = std::make_unique<SbusClient>(sender_options(options_.port, secret_),
                                              std::vector<std::string>{node_ + ".math.add"}, kParams, kSum);
  std::vector<std::string> fanout;
  for (int i = 0; i < kFanOutServices; ++i) fanout.push_back(node_ + ".bench.echo" + std::to_string(i));
  fanout_client_ = std::make_unique<SbusClient>(sender_options(options_.port, secret_), fanout, kParams, kParams);
  sbus::SenderOptions without_deadline = sender_options(options_.port, secret_);
  without_deadline.send_deadline = false;
  no_deadline_client_ =
      std::make_unique<SbusClient>(without_deadline, std::vector<std::string>{node_ + ".math.add"}, kParams, kSum);
  no_deadline_client_->roundtrip(kReplyTimeout);
  floor_client_->roundtrip(kReplyTimeout);
  sbus_client_->roundtrip(kReplyTimeout);
  fanout_client_->roundtrip(kReplyTimeout);
  std::this_thread::sleep_for(500ms);
  const pid_t worker = sbus_worker();
  const long supervisor_idle = rss_kib(sbusd_pid_);
  const long worker_idle = rss_kib(worker);
  const long floor_idle = rss_kib(floor_pid_);
  const long worker_idle_private = private_kib(worker);
  const long floor_idle_private = private_kib(floor_pid_);

  auto errors_of = [](auto& client) -> std::uint64_t {
    if constexpr (requires { client.errors(); }) {
      return client.errors();
    } else {
      return 0;
    }
  };
  // Warms the client up, then measures `load` on it.
  auto drive = [&](System system, auto& client, auto&& load) {
    for (int i = 0; i < options_.warmup_calls; ++i) client.roundtrip(kReplyTimeout);
    const std::uint64_t errors_before = errors_of(client);
    RunStats stats = timed(system, [&] { return load(client); });
    stats.errors = errors_of(client) - errors_before;
    return stats;
  };
  auto sequential = [&](System system) {
    auto load = [&](auto& client) { return run_sequential(client, run_length_); };
    return system == System::kFloor ? drive(system, *floor_client_, load) : drive(system, *sbus_client_, load);
  };
  auto pipelined = [&](int depth, bool fan_out) {
    return [&, depth, fan_out](System system) {
      auto load = [&](auto& client) { return run_pipelined(client, depth, run_length_); };
      if (system == System::kFloor) return drive(system, *floor_client_, load);
      return drive(system, fan_out ? *fanout_client_ : *sbus_client_, load);
    };
  };

  auto seq = repeat("sequential RPC", sequential);
  auto pipe16 = repeat("16 in flight", pipelined(16, false));
  auto pipe64 = repeat("64 in flight", pipelined(64, false));
  auto fan = repeat("64 in flight over 8 services", pipelined(64, true));
  auto callers = repeat("16 caller processes", [&](System system) { return run_callers(system, kCallerProcesses); });
  // Deadlines: the same sequential calls with and without, alternating run
  // by run as floor and sbus do (the "floor" column is sbus without).
  auto deadline_pair = repeat("sequential RPC without/with deadlines", [&](System system) {
    auto load = [&](auto& client) { return run_sequential(client, run_length_); };
    return system == System::kFloor ? drive(system, *no_deadline_client_, load) : drive(system, *sbus_client_, load);
  });
  // A policy: the same sequential calls to an sbusd without one and to one
  // with 50 rules (the "floor" column is sbus without), alternating.
  admin_->declare_node_queue(node_ + "-policy");
  queues_.push_back(node_ + "-policy");
  policy_pid_ = start_sbusd(write_config(node_ + "-policy", "policy", 50));
  policy_client_ = std::make_unique<SbusClient>(sender_options(options_.port, secret_),
                                                std::vector<std::string>{node_ + "-policy.math.add"}, kParams, kSum);
  policy_client_->roundtrip(kReplyTimeout);
  auto policy_pair = repeat("sequential RPC without/with a 50-rule policy", [&](System system) {
    auto load = [&](auto& client) { return run_sequential(client, run_length_); };
    return system == System::kFloor ? drive(system, *sbus_client_, load) : drive(system, *policy_client_, load);
  });
  policy_client_.reset();
  stop_process(policy_pid_, 15s);
  policy_pid_ = -1;
  auto send1 = repeat("send, 1 in flight", [&](System system) { return run_senders(system, 1); });
  auto send64 = repeat("send, 64 in flight", [&](System system) { return run_senders(system, 64); });

  // Growth: RSS after the first 10,000 calls against after soak_calls.
  std::cerr << "sbus-bench: soak, " << options_.soak_calls << " calls at 64 in flight\n";
  const std::uint64_t first = std::min<std::uint64_t>(10000, options_.soak_calls);
  const std::uint64_t soak_errors_before = sbus_client_->errors();
  RunStats soak_first = run_pipelined(*sbus_client_, 64, std::chrono::hours(1), first);
  const long worker_first = rss_kib(worker);
  RunStats soak_rest = run_pipelined(*sbus_client_, 64, std::chrono::hours(1), options_.soak_calls - first);
  const long worker_soaked = rss_kib(worker);
  sbus_errors_ += sbus_client_->errors() - soak_errors_before;
  std::cerr << "sbus-bench: soak done: "
            << static_cast<long>((soak_first.calls + soak_rest.calls) / (soak_first.seconds + soak_rest.seconds))
            << " calls/s\n";

  const long supervisor_after = rss_kib(sbusd_pid_);
  const long worker_after = rss_kib(worker);
  const long floor_after = rss_kib(floor_pid_);
  const long worker_after_private = private_kib(worker);
  const long floor_after_private = private_kib(floor_pid_);

  section("RPC (math.add), one sender connection");
  add_rpc_rows("sequential, 1 in flight", seq, true);
  rows_[rows_.size() - 4].min_ratio = 0.90;
  rows_[rows_.size() - 2].max_ratio = 1.2;
  add_rpc_rows("pipelined, 16 in flight", pipe16, false);
  add_rpc_rows("pipelined, 64 in flight", pipe64, false);
  rows_[rows_.size() - 3].min_ratio = 0.85;
  section("fan-out (floor: the same load on its one queue)");
  add_rpc_rows("64 in flight over 8 services", fan, false);
  add_rpc_rows("16 caller processes, 1 in flight each", callers, false);

  section("deadlines (floor column: sbus without them; goal: no measurable cost, ratio >= 0.98)");
  Row& with_deadlines = add("sequential, calls/s with deadlines", "", 0);
  for (RunStats& stats : deadline_pair[System::kFloor]) with_deadlines.floor.push_back(stats.rate());
  for (RunStats& stats : deadline_pair[System::kSbus]) with_deadlines.sbus.push_back(stats.rate());

  section("policy (floor column: sbus without one; goal: within 3%, ratio >= 0.97)");
  Row& with_policy = add("sequential, calls/s with a 50-rule policy", "", 0);
  for (RunStats& stats : policy_pair[System::kFloor]) with_policy.floor.push_back(stats.rate());
  for (RunStats& stats : policy_pair[System::kSbus]) with_policy.sbus.push_back(stats.rate());

  section("messages: send, persistent, confirmed");
  Row& s1 = add("1 in flight, messages/s", "", 0);
  Row& s64 = add("64 in flight (64 senders), messages/s", "", 0);
  for (System system : {System::kFloor, System::kSbus}) {
    for (RunStats& stats : send1[system]) (system == System::kFloor ? s1.floor : s1.sbus).push_back(stats.rate());
    for (RunStats& stats : send64[system]) (system == System::kFloor ? s64.floor : s64.sbus).push_back(stats.rate());
  }

  section("server CPU (sbusd: all its processes; floor: its server)");
  auto cpu_row = [&](const std::string& label, std::map<System, std::vector<RunStats>>& runs) {
    Row& row = add(label, "s", 3);
    row.max_ratio = 2.0;
    for (RunStats& stats : runs[System::kFloor]) row.floor.push_back(stats.cpu_per_10k());
    for (RunStats& stats : runs[System::kSbus]) row.sbus.push_back(stats.cpu_per_10k());
  };
  cpu_row("CPU s per 10,000 calls, sequential", seq);
  cpu_row("CPU s per 10,000 calls, 64 in flight", pipe64);
  cpu_row("CPU s per 10,000 calls, 16 callers", callers);
  // How often a server thread sleeps and is woken: the cost that dominates
  // a sequential call on a VM.
  auto switch_row = [&](const std::string& label, std::map<System, std::vector<RunStats>>& runs) {
    Row& row = add(label, "", 2);
    for (RunStats& stats : runs[System::kFloor]) row.floor.push_back(stats.switches_per_call());
    for (RunStats& stats : runs[System::kSbus]) row.sbus.push_back(stats.switches_per_call());
  };
  switch_row("thread sleeps per call, sequential", seq);
  switch_row("thread sleeps per call, 64 in flight", pipe64);

  section("memory (VmRSS; floor: its server)");
  auto rss_row = [&](const std::string& label, long floor_kib, long sbus_kib, std::optional<double> max_mb) {
    Row& row = add(label, "MB", 1);
    if (floor_kib > 0) row.floor.push_back(static_cast<double>(floor_kib) / 1024.0);
    row.sbus.push_back(static_cast<double>(sbus_kib) / 1024.0);
    row.max_value = max_mb;
  };
  rss_row("supervisor, idle", floor_idle, supervisor_idle, 5.0);
  rss_row("supervisor, after the run", floor_after, supervisor_after, 5.0);
  rss_row("worker, idle", floor_idle, worker_idle, 8.0);
  rss_row("worker, after the run", floor_after, worker_after, 8.0);
  // Most of a worker's RSS is library pages that every process using the
  // same libraries shares; what it alone holds is what each more broker
  // costs.
  rss_row("worker private (USS), idle", floor_idle_private, worker_idle_private, std::nullopt);
  rss_row("worker private (USS), after the run", floor_after_private, worker_after_private, std::nullopt);
  rss_row("worker growth, " + std::to_string(first) + " to " + std::to_string(options_.soak_calls) + " calls", 0,
          worker_soaked - worker_first, 1.0);

  section("start-up (broker up; the queues exist, as on a restart)");
  measure_startup();

  print_table();
}

std::string format(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.*f", decimals, value);
  return text;
}

void Bench::print_table() {
  utsname machine{};
  uname(&machine);
  std::string cpu;
  {
    std::ifstream info("/proc/cpuinfo");
    for (std::string line; std::getline(info, line);) {
      if (line.rfind("model name", 0) == 0) {
        cpu = trim(line.substr(line.find(':') + 2));
        break;
      }
    }
  }
  std::printf("\nsbus-bench: %s, %ld cores (%s), Linux %s, RabbitMQ %s on 127.0.0.1:%d\n",
              options_.quick ? "quick" : "full", sysconf(_SC_NPROCESSORS_ONLN), cpu.c_str(), machine.release,
              broker_version_.c_str(), options_.port);
  std::printf(
      "each figure: median of %d runs of %.1f s (start-up: %d runs); body %zu bytes; floor = raw rabbitmq-c echo\n\n",
      options_.runs, options_.seconds, options_.startup_runs, body_.size());
  std::printf("%-50s %10s %10s %7s  %-10s\n", "figure", "floor", "sbus", "ratio", "target");
  int missed = 0;
  for (const Row& row : rows_) {
    if (row.section) {
      std::printf("%s\n", row.label.c_str());
      continue;
    }
    const double floor = median(row.floor);
    const double sbus = median(row.sbus);
    const std::string label = "  " + row.label + (row.unit.empty() ? "" : " (" + row.unit + ")");
    const std::string floor_text = row.floor.empty() ? "-" : format(floor, row.decimals);
    const std::string sbus_text = row.sbus.empty() ? "-" : format(sbus, row.decimals);
    const bool have_ratio = !row.floor.empty() && !row.sbus.empty() && floor > 0;
    const double ratio = have_ratio ? sbus / floor : 0;
    std::string target;
    bool met = true;
    if (row.min_ratio) {
      target = ">= " + format(*row.min_ratio, 2) + "x";
      met = have_ratio && ratio >= *row.min_ratio;
    } else if (row.max_ratio) {
      target = "<= " + format(*row.max_ratio, 1) + "x";
      met = have_ratio && ratio <= *row.max_ratio;
    } else if (row.max_value) {
      target = "<= " + format(*row.max_value, 0) + " " + row.unit;
      met = !row.sbus.empty() && sbus <= *row.max_value;
    }
    if (!target.empty() && !met) ++missed;
    std::printf("%-50s %10s %10s %7s  %-10s %s\n", label.c_str(), floor_text.c_str(), sbus_text.c_str(),
                have_ratio ? format(ratio, 2).c_str() : "-", target.c_str(),
                target.empty() ? "" : (met ? "ok" : "MISSED"));
  }
  std::printf("\n%d target(s) missed", missed);
  if (sbus_errors_ > 0)
    std::printf("; %llu sbus calls answered wrongly", static_cast<unsigned long long>(sbus_errors_));
  std::printf("\n");
  std::fflush(stdout);
}

Options parse_options(int argc, char** argv) {
  Options options;
  bool runs_given = false, seconds_given = false, soak_given = false, startup_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--port") {
      options.port = std::atoi(value().c_str());
    } else if (arg == "--quick") {
      options.quick = true;
    } else if (arg == "--runs") {
      options.runs = std::atoi(value().c_str());
      runs_given = true;
    } else if (arg == "--seconds") {
      options.seconds = std::strtod(value().c_str(), nullptr);
      seconds_given = true;
    } else if (arg == "--soak") {
      options.soak_calls = 1000000;
      soak_given = true;
    } else if (arg == "--soak-calls") {
      options.soak_calls = std::strtoull(value().c_str(), nullptr, 10);
      soak_given = true;
    } else if (arg == "--startup-runs") {
      options.startup_runs = std::atoi(value().c_str());
      startup_given = true;
    } else if (arg == "--sbusd") {
      options.sbusd = value();
    } else if (arg == "--plugin-dir") {
      options.plugin_dir = value();
    } else if (arg == "--floor") {
      options.floor = value();
    } else if (arg == "--help" || arg == "-h") {
      usage("the benchmark of sbusd against the rabbitmq-c floor");
    } else {
      usage("unknown argument " + arg);
    }
  }
  if (options.port <= 0 || options.port > 65535) usage("--port PORT is required");
  if (options.quick) {
    if (!seconds_given) options.seconds = 0.3;
    if (!soak_given) options.soak_calls = 20000;
    if (!startup_given) options.startup_runs = 3;
    if (!runs_given) options.runs = 3;
    options.warmup_calls = 50;
  }
  if (options.runs < 1 || options.seconds <= 0 || options.startup_runs < 1)
    usage("bad --runs, --seconds or --startup-runs");
  const std::string here = self_dir();
  if (options.sbusd.empty()) options.sbusd = here + "/sbusd";
  if (options.floor.empty()) options.floor = here + "/sbus-bench-floor";
  if (options.plugin_dir.empty()) options.plugin_dir = fs::weakly_canonical(here + "/../plugins").string();
  return options;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "caller") return bench::caller_main(argc, argv);
  if (argc > 1 && std::string(argv[1]) == "load") return bench::load_main(argc, argv);
  bench::Options options = bench::parse_options(argc, argv);
  // A caller process that dies must not kill us with SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  try {
    bench::Bench bench(std::move(options));
    bench.run();
  } catch (const std::exception& e) {
    std::cerr << "sbus-bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
