// sbus-bench: sbusd beside the rabbitmq-c floor, on one broker, in one run.
//
//   sbus-bench --port PORT [--quick] [--soak] [--runs N] [--seconds S] [--soak-calls N]
//              [--startup-runs N] [--tls-port PORT --tls-dir DIR] [--sequential-only]
//              [--large-only] [--pipelined-only] [--tls-only]
//              [--sbusd PATH] [--plugin-dir DIR] [--floor PATH] [--floor-tuned PATH]
//
// The default run takes about seven minutes: 15 runs of 1 s of each load
// pattern per system (the sequential one, and the deadline and policy
// pairs: 60 windows of 0.5 s in which the two sides take turns every ten
// calls, run_interleaved()), the large bodies,
// TLS when the broker has a listener for it (--tls-port, with
// tests/tls/make_certs' files in --tls-dir), and a soak of 200,000 calls
// for RSS growth. --soak
// makes the soak the 1,000,000 calls (one to two minutes more);
// --quick is the test suite's short run (figures printed, not asserted).
//
// Starts the floor server (sbus-bench-floor, which acks each delivery; and
// sbus-bench-floor-tuned, with multiple acks and coalesced writes) and sbusd with the example
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
//   sbus-bench load PORT ADDRESS[,ADDRESS...] SECRET_FILE CALLS DEPTH [no-deadline]
//   sbus-bench load PORT floor:QUEUE BODY_FILE CALLS DEPTH
//
// makes CALLS calls to a running sbusd (or floor server), DEPTH in flight,
// and prints the rate: a fixed load to profile the server under (perf,
// strace -c, callgrind). no-deadline: sbus's calls without their deadline
// (SenderOptions::send_deadline off), to time against them. tls=DIR: over
// amqps:// to PORT, the broker's TLS port, with tests/tls/make_certs' files.
#include <amqp.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sbus/sender.hpp>

#include "bench.hpp"
#include "bench_util.hpp"
#include "child_process.hpp"
#include "drivers.hpp"
#include "proc_stats.hpp"

namespace bench {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

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
  body_ = capture_body(kParams, "math.add");
  body_file_ = dir_ + "/body";
  write_text(body_file_, body_);
}

void Bench::cleanup() {
  for (const pid_t pid : extra_pids_) stop_process(pid, 15s);
  extra_pids_.clear();
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

std::string Bench::write_config(const std::string& node, const std::string& name, int policy_rules, bool tls) const {
  std::ostringstream yaml;
  yaml << "node: " << node << "\n";
  if (tls) {
    const TlsFiles files = tls_files();
    yaml << "brokers:\n  - amqps://guest:guest@localhost:" << options_.tls_port << "/%2f\n"
         << "tls:\n  ca_file: " << files.ca_file << "\n  cert_file: " << files.cert_file
         << "\n  key_file: " << files.key_file << "\n";
  } else {
    yaml << "brokers:\n  - amqp://guest:guest@127.0.0.1:" << options_.port << "/%2f\n";
  }
  // Room for the 1 MiB params of the large-body figures and their envelope.
  // A handled store of its own (never the default /var/lib/sbus, which
  // every other sbusd on the machine would share: its writer lock, and a
  // file that grows run after run, would be measured too).
  yaml << "secret_file: " << secret_file_ << "\n"
       << "state_dir: " << dir_ << "/state-" << name << "\n"
       << "plugin_dir: " << options_.plugin_dir << "\n"
       << "prefetch: 64\n"
       << "max_message_bytes: 4194304\n"
       << "services:\n"
       << "  - name: math.add\n    plugin: math\n"
       << "  - name: test.echo\n    plugin: test\n"
       << "    queue_bytes: 67108864\n";  // 16 calls of 1 MiB in flight and their envelopes
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

std::string Bench::capture_body(const std::string& params, const std::string& service) {
  const std::string queue = "bench-capture-" + std::to_string(getpid());
  admin_->declare_node_queue(queue);
  sbus::Sender sender(sender_options(options_.port, secret_));
  sender.call_async(queue + "." + service, params);
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

pid_t Bench::start_floor(const std::string& queue, const std::string& binary, bool tls) {
  const int log = ::open((dir_ + "/floor.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  SpawnOptions spawn_options;
  spawn_options.args = {binary.empty() ? options_.floor : binary,
                        std::to_string(tls ? options_.tls_port : options_.port), queue, "64"};
  if (tls) spawn_options.args.push_back(options_.tls_dir);
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

Bench::Runs Bench::repeat(const std::string& what, const std::function<RunStats(System)>& measure, int count) {
  Runs runs;
  std::cerr << "sbus-bench: " << what << ":";
  for (int run = 0; run < (count > 0 ? count : options_.runs); ++run) {
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
template <class A, class B>
Bench::Runs Bench::interleave(const std::string& what, A& floor_side, B& sbus_side) {
  auto errors_of = [](auto& client) -> std::uint64_t {
    if constexpr (requires { client.errors(); }) {
      return client.errors();
    } else {
      return 0;
    }
  };
  for (int i = 0; i < options_.warmup_calls; ++i) {
    floor_side.roundtrip(kReplyTimeout);
    sbus_side.roundtrip(kReplyTimeout);
  }
  const std::chrono::duration<double> window(options_.sequential_seconds);
  Runs runs;
  std::cerr << "sbus-bench: " << what << ", interleaved, sbus/floor:";
  for (int run = 0; run < options_.sequential_runs; ++run) {
    const double cpu_before[] = {server_cpu(System::kFloor), server_cpu(System::kSbus)};
    const long switches_before[] = {server_switches(System::kFloor), server_switches(System::kSbus)};
    const std::uint64_t errors_before = errors_of(sbus_side);
    auto [floor_stats, sbus_stats] = run_interleaved(floor_side, sbus_side, window, kBurstCalls);
    floor_stats.cpu_seconds = server_cpu(System::kFloor) - cpu_before[0];
    sbus_stats.cpu_seconds = server_cpu(System::kSbus) - cpu_before[1];
    floor_stats.switches = server_switches(System::kFloor) - switches_before[0];
    sbus_stats.switches = server_switches(System::kSbus) - switches_before[1];
    sbus_stats.errors = errors_of(sbus_side) - errors_before;
    sbus_errors_ += sbus_stats.errors;
    std::fprintf(stderr, " %.2f", floor_stats.rate() > 0 ? sbus_stats.rate() / floor_stats.rate() : 0.0);
    if (sbus_stats.errors > 0) std::cerr << " (" << sbus_stats.errors << " errors)";
    runs[System::kFloor].push_back(std::move(floor_stats));
    runs[System::kSbus].push_back(std::move(sbus_stats));
  }
  std::cerr << "\n";
  return runs;
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

void Bench::add_rpc_rows(const std::string& what, Runs& runs, bool tail) {
  Row& rate = add(what + ", calls/s", "", 0);
  rate.paired = true;
  rate.ratios = burst_ratios(runs);
  Row& p50 = add("  p50 latency", "us", 0);
  Row& p99 = add("  p99 latency", "us", 0);
  for (System system : {System::kFloor, System::kSbus}) {
    for (RunStats& stats : runs[system]) {
      auto column = [&](Row& row) -> std::vector<double>& { return system == System::kFloor ? row.floor : row.sbus; };
      column(rate).push_back(stats.rate());
      column(p50).push_back(stats.latency_us(0.50));
      column(p99).push_back(stats.latency_us(0.99));
    }
  }
  if (tail) add_tail_row(runs);
}

// Of all the runs together: /proc counts CPU in ticks of 10 ms, which a
// window of 0.5 s at a few hundred calls may not reach.
void Bench::add_cpu_row(const std::string& label, Runs& runs, double max_ratio) {
  Row& row = add(label, "s", 3);
  row.max_ratio = max_ratio;
  for (System system : {System::kFloor, System::kSbus}) {
    RunStats all;
    for (RunStats& stats : runs[system]) {
      all.calls += stats.calls;
      all.cpu_seconds += stats.cpu_seconds;
    }
    (system == System::kFloor ? row.floor : row.sbus).push_back(all.cpu_per_10k());
  }
}

void Bench::add_rss_row(const std::string& label, long floor_kib, long sbus_kib, std::optional<double> max_mb) {
  Row& row = add(label, "MB", 1);
  if (floor_kib > 0) row.floor.push_back(static_cast<double>(floor_kib) / 1024.0);
  row.sbus.push_back(static_cast<double>(sbus_kib) / 1024.0);
  row.max_value = max_mb;
}

// The floor server and sbusd run from here on, and their clients: the one
// not driven is idle (sbusd's ping watcher: one probe every 2 s).
void Bench::start_servers() {
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
}

// The measuring and reporting of the core figures in one place, in the
// order of the table; the newer sections are functions of their own
// (bench_figures.cpp). Long, but a straight line.
void Bench::run() {
  prepare();
  start_servers();
  const pid_t worker = sbus_worker();
  const long supervisor_idle = rss_kib(sbusd_pid_);
  const long worker_idle = rss_kib(worker);
  const long floor_idle = rss_kib(floor_pid_);
  const long worker_idle_private = private_kib(worker);
  const long floor_idle_private = private_kib(floor_pid_);
  if (options_.large_only) {
    measure_large_bodies();
    print_table();
    return;
  }
  if (options_.tls_only) {
    measure_tls();
    print_table();
    return;
  }

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
  auto pipelined = [&](int depth, bool fan_out) {
    return [&, depth, fan_out](System system) {
      auto load = [&](auto& client) { return run_pipelined(client, depth, run_length_); };
      if (system == System::kFloor) return drive(system, *floor_client_, load);
      return drive(system, fan_out ? *fanout_client_ : *sbus_client_, load);
    };
  };

  // Not measured for --pipelined-only: a minute of the few it takes.
  Runs seq;
  if (!options_.pipelined_only) seq = interleave("sequential RPC", *floor_client_, *sbus_client_);
  // How often a server thread sleeps and is woken: the cost that dominates
  // a sequential call on a VM.
  auto switch_row = [&](const std::string& label, Runs& runs) {
    Row& row = add(label, "", 2);
    for (RunStats& stats : runs[System::kFloor]) row.floor.push_back(stats.switches_per_call());
    for (RunStats& stats : runs[System::kSbus]) row.sbus.push_back(stats.switches_per_call());
  };
  if (options_.sequential_only) {
    section("RPC (math.add), one sender connection");
    add_rpc_rows("sequential, 1 in flight", seq, true);
    rows_[rows_.size() - 4].min_ratio = 0.90;
    rows_[rows_.size() - 2].max_ratio = 1.2;
    rows_[rows_.size() - 1].max_ratio = 1.2;
    add_cpu_row("CPU s per 10,000 calls, sequential", seq, 2.0);
    switch_row("thread sleeps per call, sequential", seq);
    print_table();
    return;
  }
  auto pipe64 = repeat("64 in flight", pipelined(64, false));
  auto fan = repeat("64 in flight over 8 services", pipelined(64, true));
  auto callers = repeat("16 caller processes", [&](System system) { return run_callers(system, kCallerProcesses); });
  // The rows of the loads with calls in flight, and the tuned floor beside
  // them, in the table's order.
  auto add_pipelined_rows = [&] {
    add_rpc_rows("pipelined, 64 in flight", pipe64, false);
    rows_[rows_.size() - 3].min_ratio = 1.10;
    measure_tuned_floor([&](System system, FloorClient* floor, SbusClient* sbus) {
      auto load = [&](auto& client) { return run_pipelined(client, 64, run_length_); };
      return floor != nullptr ? drive(system, *floor, load) : drive(system, *sbus, load);
    });
    section("fan-out (floor: the same load on its one queue)");
    add_rpc_rows("64 in flight over 8 services", fan, false);
    rows_[rows_.size() - 3].min_ratio = 0.95;
    add_rpc_rows("16 caller processes, 1 in flight each", callers, false);
    rows_[rows_.size() - 3].min_ratio = 0.95;
  };
  // The server's CPU and thread sleeps a call, the sequential figure's
  // too unless it was not measured.
  auto add_cost_rows = [&](bool sequential) {
    section("server CPU (sbusd: all its processes; floor: its server)");
    if (sequential) add_cpu_row("CPU s per 10,000 calls, sequential", seq, 2.0);
    add_cpu_row("CPU s per 10,000 calls, 64 in flight", pipe64, 2.0);
    add_cpu_row("CPU s per 10,000 calls, 64 over 8 services", fan, 1.3);
    add_cpu_row("CPU s per 10,000 calls, 16 callers", callers, 1.3);
    if (sequential) switch_row("thread sleeps per call, sequential", seq);
    switch_row("thread sleeps per call, 64 in flight", pipe64);
    switch_row("thread sleeps per call, 64 over 8 services", fan);
    switch_row("thread sleeps per call, 16 callers", callers);
  };
  if (options_.pipelined_only) {
    section("RPC (math.add), one sender connection");
    add_pipelined_rows();
    add_cost_rows(false);
    print_table();
    return;
  }
  auto pipe16 = repeat("16 in flight", pipelined(16, false));
  // Deadlines: the same sequential calls with and without, interleaved as
  // floor and sbus are (the "floor" column is sbus without).
  auto deadline_pair = interleave("sequential RPC without/with deadlines", *no_deadline_client_, *sbus_client_);
  // A policy: the same sequential calls to an sbusd without one and to one
  // with 50 rules (the "floor" column is sbus without), interleaved.
  admin_->declare_node_queue(node_ + "-policy");
  queues_.push_back(node_ + "-policy");
  policy_pid_ = start_sbusd(write_config(node_ + "-policy", "policy", 50));
  policy_client_ = std::make_unique<SbusClient>(sender_options(options_.port, secret_),
                                                std::vector<std::string>{node_ + "-policy.math.add"}, kParams, kSum);
  policy_client_->roundtrip(kReplyTimeout);
  auto policy_pair = interleave("sequential RPC without/with a 50-rule policy", *sbus_client_, *policy_client_);
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
  if (sbus_client_->errors() > soak_errors_before) {
    std::cerr << "sbus-bench: soak: " << sbus_client_->errors() - soak_errors_before
              << " calls answered wrongly, the last: " << sbus_client_->last_error() << "\n";
  }
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
  rows_[rows_.size() - 1].max_ratio = 1.2;
  add_rpc_rows("pipelined, 16 in flight", pipe16, false);
  add_pipelined_rows();

  section("deadlines (floor column: sbus without them; goal: no measurable cost, ratio >= 0.98)");
  Row& with_deadlines = add("sequential, calls/s with deadlines", "", 0);
  with_deadlines.paired = true;
  with_deadlines.ratios = burst_ratios(deadline_pair);
  for (RunStats& stats : deadline_pair[System::kFloor]) with_deadlines.floor.push_back(stats.rate());
  for (RunStats& stats : deadline_pair[System::kSbus]) with_deadlines.sbus.push_back(stats.rate());

  section("policy (floor column: sbus without one; goal: within 3%, ratio >= 0.97)");
  Row& with_policy = add("sequential, calls/s with a 50-rule policy", "", 0);
  with_policy.paired = true;
  with_policy.ratios = burst_ratios(policy_pair);
  for (RunStats& stats : policy_pair[System::kFloor]) with_policy.floor.push_back(stats.rate());
  for (RunStats& stats : policy_pair[System::kSbus]) with_policy.sbus.push_back(stats.rate());

  section("messages: send, persistent, confirmed");
  Row& s1 = add("1 in flight, messages/s", "", 0);
  Row& s64 = add("64 in flight (64 senders), messages/s", "", 0);
  for (System system : {System::kFloor, System::kSbus}) {
    for (RunStats& stats : send1[system]) (system == System::kFloor ? s1.floor : s1.sbus).push_back(stats.rate());
    for (RunStats& stats : send64[system]) (system == System::kFloor ? s64.floor : s64.sbus).push_back(stats.rate());
  }

  add_cost_rows(true);

  section("memory (VmRSS; floor: its server)");
  add_rss_row("supervisor, idle", floor_idle, supervisor_idle, 5.0);
  add_rss_row("supervisor, after the run", floor_after, supervisor_after, 5.0);
  add_rss_row("worker, idle", floor_idle, worker_idle, 8.0);
  add_rss_row("worker, after the run", floor_after, worker_after, 8.0);
  // Most of a worker's RSS is library pages that every process using the
  // same libraries shares; what it alone holds is what each more broker
  // costs.
  add_rss_row("worker private (USS), idle", floor_idle_private, worker_idle_private, std::nullopt);
  add_rss_row("worker private (USS), after the run", floor_after_private, worker_after_private, std::nullopt);
  add_rss_row("worker growth, " + std::to_string(first) + " to " + std::to_string(options_.soak_calls) + " calls", 0,
              worker_soaked - worker_first, 1.0);

  measure_large_bodies();
  measure_tls();

  section("start-up (broker up; the queues exist, as on a restart)");
  measure_startup();

  print_table();
}

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
