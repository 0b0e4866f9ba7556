// sbus-bench's table: sbusd beside the rabbitmq-c floor, on one broker, in
// one run (sbus_bench.cpp's comment says how it runs). The class is split
// over files by what it measures:
//   sbus_bench.cpp     set-up, the core RPC and message figures, main()
//   bench_loads.cpp    caller processes, message senders, start-up
//   bench_figures.cpp  issue 25's figures: the tuned floor, large bodies, TLS
//   bench_report.cpp   options, the table, the ratios of interleaved runs and the tail
#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "floor_client.hpp"
#include "raw_amqp.hpp"
#include "run_stats.hpp"
#include "sbus_client.hpp"

namespace bench {

inline constexpr int kFanOutServices = 8;
inline constexpr int kCallerProcesses = 16;
// Calls to one side before the other's turn in an interleaved window.
inline constexpr int kBurstCalls = 10;

enum class System { kFloor, kSbus };
inline const char* name_of(System system) {
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
  // The sequential figures (and the deadline and policy pairs), the ones
  // most moved by a slow spell: the two sides interleaved in bursts of
  // kBurstCalls calls within each of these windows (run_interleaved()), and
  // the ratio the median of the windows' ratios (Row::paired). Windows taken
  // one side after the other, 30 of 0.5 s a side, gave five runs from 0.43
  // to 1.19 on a busy machine.
  int sequential_runs = 60;
  double sequential_seconds = 0.5;  // a window, both sides together
  // --sequential-only: that figure alone, as the default run takes it (to
  // show that its ratio holds from run to run).
  bool sequential_only = false;
  // --large-only: the large-body figures alone (64 KiB and 1 MiB echoes).
  bool large_only = false;
  // --pipelined-only: the loads with calls in flight (64 on one service,
  // beside both floors; over 8 services; 16 callers), their CPU and sleeps.
  bool pipelined_only = false;
  // --tls-only: the figures over TLS alone.
  bool tls_only = false;
  // RSS after the first 10,000 calls against after this many.
  std::uint64_t soak_calls = 200000;
  int startup_runs = 5;
  int warmup_calls = 200;  // before each measured run
  // The broker's TLS listener (scripts/bench starts one) and the folder of
  // tests/tls/make_certs' files; 0: the TLS figures are not measured.
  int tls_port = 0;
  std::string tls_dir;
  std::string sbusd;
  std::string plugin_dir;
  std::string floor;
  std::string floor_tuned;
};

Options parse_options(int argc, char** argv);

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
  // The ratio is the median of sbus[i] / floor[i] (runs taken next to each
  // other in time), not the ratio of the medians: a slow spell that lasts a
  // few runs then moves both sides of the ratios it touches. The table
  // prints the quartiles of those ratios beside it.
  bool paired = false;
  // When not empty, the ratios a paired row takes the median of instead:
  // those of each burst of an interleaved run to the other side's burst
  // next to it (burst_ratios()).
  std::vector<double> ratios;
  // Printed after the target (how much a figure moved within the run).
  std::string note;
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
  using Runs = std::map<System, std::vector<RunStats>>;

  // Set-up and tear-down.
  void prepare();
  void start_servers();
  void cleanup();
  // `policy_rules` > 0: a policy of that many rules, of which only the last
  // lets the calls in (what a policy costs per call). With `tls`: the
  // broker's TLS port, mutual TLS.
  std::string write_config(const std::string& node, const std::string& name, int policy_rules = 0,
                           bool tls = false) const;
  // The body of a call with `params` to `service` of a node exactly as
  // sbus::Sender writes it: the floor's calls carry the same bytes.
  std::string capture_body(const std::string& params, const std::string& service);
  // `binary`: the floor (default) or another floor server; `tls`: over TLS.
  pid_t start_floor(const std::string& queue, const std::string& binary = {}, bool tls = false);
  pid_t start_sbusd(const std::string& config, const std::string& notify_socket = {});
  void wait_drained(const std::string& queue);
  TlsFiles tls_files() const { return TlsFiles::in(options_.tls_dir); }

  // Measurement.
  double server_cpu(System system) const;
  long server_switches(System system) const;
  pid_t sbus_worker() const;
  // `run()`, with the server's CPU time and wake-ups over it.
  template <class F>
  RunStats timed(System system, F&& run) {
    const double before = server_cpu(system);
    const long switches_before = server_switches(system);
    RunStats stats = run();
    stats.cpu_seconds = server_cpu(system) - before;
    stats.switches = server_switches(system) - switches_before;
    return stats;
  }
  // `measure(system)` once per run per system, floor and sbus in turn;
  // `runs` 0: options_.runs.
  Runs repeat(const std::string& what, const std::function<RunStats(System)>& measure, int runs = 0);
  // Sequential calls to `floor_side` (as System::kFloor) and to `sbus_side`
  // interleaved: options_.sequential_runs windows of run_interleaved(), each
  // side's stats per window with its server's CPU and wake-ups over the
  // window (the server not called meanwhile idles).
  template <class A, class B>
  Runs interleave(const std::string& what, A& floor_side, B& sbus_side);
  RunStats run_callers(System system, int processes);
  RunStats run_senders(System system, int threads);
  void measure_startup();
  // Issue 25's figures (bench_figures.cpp), each adding its rows.
  // `pipelined64(system, floor, sbus)`: 64 in flight on the one client
  // given, warmed up and timed as `system`.
  void measure_tuned_floor(const std::function<RunStats(System, FloorClient*, SbusClient*)>& pipelined64);
  void measure_large_bodies();
  void measure_tls();

  // Report.
  Row& add(std::string label, std::string unit, int decimals);
  void section(std::string heading);
  // calls/s (paired) and latency rows for an RPC load pattern; with `tail`
  // also p99.9, of all the runs' calls together.
  void add_rpc_rows(const std::string& what, Runs& runs, bool tail);
  void add_tail_row(Runs& runs);
  // Of interleaved runs: each floor burst's seconds over the sbus burst's
  // beside it, i.e. sbus's rate over the floor's, burst by burst. A slow
  // spell of the machine (tens of ms, under load) lands whole on a few
  // bursts, and the median of some thousand pairs stands through it where
  // a window's total does not.
  static std::vector<double> burst_ratios(Runs& runs);
  // CPU s per 10,000 calls of the servers over all the runs, held to
  // `max_ratio`.
  void add_cpu_row(const std::string& label, Runs& runs, double max_ratio);
  void add_rss_row(const std::string& label, long floor_kib, long sbus_kib, std::optional<double> max_mb);
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
  // A second sbusd with a 50-rule policy, run only for its pair of runs; a
  // third over TLS, and the floor servers other than floor_pid_, likewise.
  pid_t policy_pid_ = -1;
  std::unique_ptr<SbusClient> policy_client_;
  std::vector<pid_t> extra_pids_;  // stopped by cleanup()
  std::deque<Row> rows_;           // a deque: add() hands out references that must stay valid
  std::uint64_t sbus_errors_ = 0;
  std::string broker_version_;
};

}  // namespace bench
