// The figures of issue 25: sbusd beside a tuned floor (multiple acks,
// coalesced writes), large bodies, and TLS. Each section starts the servers
// it needs, measures in turns as the rest of the table does, adds its rows
// and stops them.
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench.hpp"
#include "bench_util.hpp"
#include "child_process.hpp"
#include "drivers.hpp"
#include "proc_stats.hpp"

namespace bench {

using namespace std::chrono_literals;

namespace {

// While it lives, the servers whose CPU, wake-ups and RSS the table reads
// (floor_pid_, sbusd_pid_) are others: a section's own.
class ServersSwap {
 public:
  ServersSwap(pid_t* floor_slot, pid_t floor, pid_t* sbusd_slot, pid_t sbusd)
      : floor_slot_(floor_slot), sbusd_slot_(sbusd_slot), floor_(std::exchange(*floor_slot, floor)) {
    if (sbusd_slot_ != nullptr) sbusd_ = std::exchange(*sbusd_slot_, sbusd);
  }
  ~ServersSwap() {
    *floor_slot_ = floor_;
    if (sbusd_slot_ != nullptr) *sbusd_slot_ = sbusd_;
  }
  ServersSwap(const ServersSwap&) = delete;
  ServersSwap& operator=(const ServersSwap&) = delete;

 private:
  pid_t* floor_slot_;
  pid_t* sbusd_slot_;
  pid_t floor_;
  pid_t sbusd_ = -1;
};

template <class Client>
RunStats warm_and_run(Client& client, const std::function<RunStats(Client&)>& load) {
  for (int i = 0; i < 3; ++i) client.roundtrip(kReplyTimeout);
  return load(client);
}

}  // namespace

void Bench::measure_tuned_floor(const std::function<RunStats(System, FloorClient*, SbusClient*)>& pipelined64) {
  const std::string queue = floor_queue_ + "-tuned";
  admin_->declare_node_queue(queue);
  queues_.push_back(queue);
  const pid_t tuned_pid = start_floor(queue, options_.floor_tuned);
  extra_pids_.push_back(tuned_pid);
  FloorClient tuned(options_.port, queue, body_);
  tuned.roundtrip(kReplyTimeout);
  Runs floors;
  Runs beside;
  {
    ServersSwap swap(&floor_pid_, tuned_pid, nullptr, -1);
    // What the tuning gains the floor itself (the "sbus" column: the tuned
    // floor), then sbusd beside the tuned floor.
    floors = repeat("64 in flight, ack-each floor / tuned floor", [&](System system) {
      return system == System::kFloor ? pipelined64(system, floor_client_.get(), nullptr)
                                      : pipelined64(System::kFloor, &tuned, nullptr);
    });
    beside = repeat("64 in flight, tuned floor / sbus", [&](System system) {
      return system == System::kFloor ? pipelined64(system, &tuned, nullptr)
                                      : pipelined64(system, nullptr, sbus_client_.get());
    });
  }
  stop_process(tuned_pid, 5s);
  extra_pids_.erase(std::find(extra_pids_.begin(), extra_pids_.end(), tuned_pid));
  Row& gain = add("  tuned floor / ack-each floor, calls/s", "", 0);
  gain.paired = true;
  for (RunStats& stats : floors[System::kFloor]) gain.floor.push_back(stats.rate());
  for (RunStats& stats : floors[System::kSbus]) gain.sbus.push_back(stats.rate());
  section("RPC beside the tuned floor (multiple acks, coalesced writes)");
  add_rpc_rows("pipelined, 64 in flight", beside, false);
  rows_[rows_.size() - 3].min_ratio = 0.90;
}

// 64 KiB and 1 MiB params echoed (test.echo), sequential and 16 in flight;
// the floor echoes a call of the same params as sbus::Sender writes it.
void Bench::measure_large_bodies() {
  section("large bodies (test.echo; floor: echoes the same call's body)");
  const pid_t worker = sbus_worker();
  const long worker_before = rss_kib(worker);
  const long floor_before = rss_kib(floor_pid_);
  for (const std::size_t size : {std::size_t{64} * 1024, std::size_t{1024} * 1024}) {
    const std::string params = large_params(size);
    const std::string name = size < 1024 * 1024 ? "64 KiB" : "1 MiB";
    FloorClient floor(options_.port, floor_queue_, capture_body(params, "test.echo"));
    SbusClient sbus(sender_options(options_.port, secret_), {node_ + ".test.echo"}, params, params);
    for (const int depth : {1, 16}) {
      Runs runs = repeat(name + ", " + std::to_string(depth) + " in flight", [&](System system) {
        auto load = [&](auto& client) {
          return depth == 1 ? run_sequential(client, run_length_) : run_pipelined(client, depth, run_length_);
        };
        const std::uint64_t errors_before = sbus.errors();
        RunStats stats = system == System::kFloor
                             ? timed(system, [&] { return warm_and_run<FloorClient>(floor, load); })
                             : timed(system, [&] { return warm_and_run<SbusClient>(sbus, load); });
        stats.errors = sbus.errors() - errors_before;
        return stats;
      });
      const std::string what = name + (depth == 1 ? ", sequential" : ", 16 in flight");
      add_rpc_rows(what, runs, false);
      rows_[rows_.size() - 3].min_ratio = 0.90;
      // Params out and reply back, per second.
      Row& rate = add("  MB/s, params and reply", "", 1);
      rate.paired = true;
      rate.min_ratio = 0.90;
      for (RunStats& stats : runs[System::kFloor]) rate.floor.push_back(stats.rate() * 2.0 * size / 1e6);
      for (RunStats& stats : runs[System::kSbus]) rate.sbus.push_back(stats.rate() * 2.0 * size / 1e6);
    }
    if (sbus.errors() > 0) std::cerr << "sbus-bench: " << name << ": " << sbus.last_error() << "\n";
  }
  std::this_thread::sleep_for(500ms);
  add_rss_row("worker, before the large bodies", floor_before, worker_before, std::nullopt);
  add_rss_row("worker, after the large bodies", rss_kib(floor_pid_), rss_kib(worker), std::nullopt);
  add_rss_row("worker, after less before", 0, rss_kib(worker) - worker_before, 2.0);
}

// The floor through rabbitmq-c's TLS socket, and an sbusd of its own over
// amqps://, both with the client certificate, on the broker's TLS port.
void Bench::measure_tls() {
  section("over TLS (amqps://, mutual TLS; floor: the same floor through rabbitmq-c's TLS socket)");
  if (options_.tls_port == 0) {
    add("not measured: no --tls-port/--tls-dir (scripts/bench gives them)", "", 0);
    return;
  }
  const std::string queue = floor_queue_ + "-tls";
  const std::string node = node_ + "-tls";
  admin_->declare_node_queue(queue);
  admin_->declare_node_queue(node);
  queues_.insert(queues_.end(), {queue, node, node + ".error"});
  const pid_t floor_pid = start_floor(queue, options_.floor, true);
  const pid_t sbusd_pid = start_sbusd(write_config(node, "tls", 0, true));
  extra_pids_.insert(extra_pids_.end(), {floor_pid, sbusd_pid});
  FloorClient floor(options_.tls_port, queue, body_, tls_files());
  SbusClient sbus(sender_options(options_.tls_port, secret_, tls_files()), {node + ".math.add"}, kParams, kSum);
  floor.roundtrip(kReplyTimeout);
  sbus.roundtrip(kReplyTimeout);
  std::this_thread::sleep_for(500ms);
  ServersSwap swap(&floor_pid_, floor_pid, &sbusd_pid_, sbusd_pid);
  const pid_t worker = sbus_worker();
  auto measure = [&](int depth) {
    return [&, depth](System system) {
      auto load = [&](auto& client) {
        return depth == 1 ? run_sequential(client, run_length_) : run_pipelined(client, depth, run_length_);
      };
      RunStats stats = system == System::kFloor ? timed(system, [&] { return warm_and_run<FloorClient>(floor, load); })
                                                : timed(system, [&] { return warm_and_run<SbusClient>(sbus, load); });
      return stats;
    };
  };
  Runs seq = repeat("TLS, sequential", measure(1));
  Runs pipe64 = repeat("TLS, 64 in flight", measure(64));
  sbus_errors_ += sbus.errors();
  if (sbus.errors() > 0) std::cerr << "sbus-bench: TLS: " << sbus.last_error() << "\n";
  add_rpc_rows("sequential, 1 in flight", seq, false);
  rows_[rows_.size() - 3].min_ratio = 0.90;
  add_rpc_rows("pipelined, 64 in flight", pipe64, false);
  rows_[rows_.size() - 3].min_ratio = 0.90;
  add_cpu_row("CPU s per 10,000 calls, 64 in flight", pipe64, 2.0);
  add_rss_row("worker over TLS, after the run", rss_kib(floor_pid), rss_kib(worker), 9.0);
  stop_process(sbusd_pid, 15s);
  stop_process(floor_pid, 5s);
  extra_pids_.clear();
}

}  // namespace bench
