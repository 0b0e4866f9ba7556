// sbus-isolate-bench: what isolation costs a call (docs/isolation.md;
// docs/performance.md has a run).
//
//   sbus-isolate-bench --port PORT --sbusd PATH --plugin-dir DIR [--quick]
//
// Starts one sbusd for the node bench-isolate against the broker on
// 127.0.0.1:PORT with the test plugin's echo twice: bench.echo in the worker
// and bench.isolated with `isolate: true`, so that both are measured in the
// same run, on the same broker and worker. For each, in turns (worker,
// isolated, worker, isolated: the machine's noise spreads over both):
//   - one sender, one call at a time: p50 and p99 of the round trip;
//   - four senders, one call at a time each, for a few seconds: calls/s.
// Prints one line per service and the ratios isolated / worker.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sbus/sender.hpp>

#include "bench_util.hpp"
#include "child_process.hpp"

namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr const char* kNode = "bench-isolate";
constexpr const char* kSecret = "sbus-isolate-bench secret, 16 bytes or more";
constexpr int kSenders = 4;

struct Options : bench::SbusdOptions {
  bool quick = false;
};

struct Figures {
  std::vector<double> latency_us;  // every round trip of the one-sender turns
  std::uint64_t calls = 0;         // of the four-sender turns
  double seconds = 0;
  std::uint64_t failed = 0;
};

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<std::size_t>(p * static_cast<double>(values.size())))];
}

// One sender, `count` calls one after the other.
void latency_turn(const sbus::SenderOptions& options, const std::string& address, int count, Figures* figures) {
  sbus::Sender sender(options);
  for (int i = 0; i < count; ++i) {
    const auto start = Steady::now();
    const sbus::CallResult result = sender.call(address, "[" + std::to_string(i) + "]", 10s);
    const auto took = std::chrono::duration<double, std::micro>(Steady::now() - start).count();
    if (!result.ok()) ++figures->failed;
    figures->latency_us.push_back(took);
  }
}

// kSenders senders calling for `length`, one call at a time each.
void throughput_turn(const sbus::SenderOptions& options, const std::string& address, std::chrono::seconds length,
                     Figures* figures) {
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> failed{0};
  std::vector<std::thread> threads;
  const auto start = Steady::now();
  const auto until = start + length;
  for (int s = 0; s < kSenders; ++s) {
    threads.emplace_back([&] {
      sbus::Sender sender(options);
      while (Steady::now() < until) {
        if (sender.call(address, "[1]", 10s).ok()) {
          ++calls;
        } else {
          ++failed;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  figures->calls += calls.load();
  figures->failed += failed.load();
  figures->seconds += std::chrono::duration<double>(Steady::now() - start).count();
}

pid_t start_sbusd(const Options& options, const sbus::SenderOptions& sender_options, const std::string& dir) {
  const std::string config = dir + "/sbusd.yaml";
  std::ofstream(config) << "node: " << kNode << "\nbrokers: [" << sender_options.brokers[0] << "]\nsecret: \""
                        << kSecret << "\"\nstate_dir: " << dir
                        << "/state\nplugin_dir: " << std::filesystem::absolute(options.plugin_dir).string()
                        << "\nlog_level: warn\nservices:\n"
                        << "  - name: bench.echo\n    plugin: test\n    export: echo\n"
                        << "  - name: bench.isolated\n    plugin: test\n    export: echo\n    isolate: true\n";
  bench::SpawnOptions spawn;
  spawn.args = {options.sbusd, "--config", config};
  const pid_t sbusd = bench::spawn(spawn);
  sbus::Sender sender(sender_options);
  for (int attempt = 0; attempt < 60; ++attempt) {
    try {
      if (sender.call(std::string(kNode) + ".bench.isolated", "[0]", 2s).ok()) return sbusd;
    } catch (const sbus::SenderError&) {
    }
    std::this_thread::sleep_for(500ms);
  }
  bench::stop_process(sbusd, 10s);
  throw std::runtime_error("sbusd's isolated service did not answer within 30 s");
}

void print_line(const char* where, const Figures& figures) {
  std::printf("%-22s %10.0f %10.1f %10.1f %8llu\n", where, figures.calls / figures.seconds,
              percentile(figures.latency_us, 0.5), percentile(figures.latency_us, 0.99),
              static_cast<unsigned long long>(figures.failed));
}

int run(const Options& options) {
  sbus::SenderOptions sender_options;
  sender_options.brokers = {"amqp://guest:guest@127.0.0.1:" + std::to_string(options.port) + "/%2f"};
  sender_options.secret = kSecret;
  const std::string dir = "/tmp/sbus-isolate-bench." + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const pid_t sbusd = start_sbusd(options, sender_options, dir);
  const int turns = options.quick ? 2 : 4;
  const int calls = options.quick ? 500 : 3000;
  const std::chrono::seconds length = options.quick ? 2s : 5s;
  Figures worker;
  Figures isolated;
  const std::string in_worker = std::string(kNode) + ".bench.echo";
  const std::string in_process = std::string(kNode) + ".bench.isolated";
  for (int turn = 0; turn < turns; ++turn) {
    latency_turn(sender_options, in_worker, calls, &worker);
    latency_turn(sender_options, in_process, calls, &isolated);
    throughput_turn(sender_options, in_worker, length, &worker);
    throughput_turn(sender_options, in_process, length, &isolated);
  }
  bench::stop_process(sbusd, 10s);
  std::filesystem::remove_all(dir);
  std::printf("sbus-isolate-bench: test.echo in the worker and isolated, same sbusd, same run\n");
  std::printf("%-22s %10s %10s %10s %8s\n", "service", "calls/s", "p50 us", "p99 us", "failed");
  print_line("in the worker", worker);
  print_line("isolated", isolated);
  std::printf("isolated / worker: calls/s %.2f, p50 %.2f (+%.0f us a call)\n",
              (isolated.calls / isolated.seconds) / (worker.calls / worker.seconds),
              percentile(isolated.latency_us, 0.5) / percentile(worker.latency_us, 0.5),
              percentile(isolated.latency_us, 0.5) - percentile(worker.latency_us, 0.5));
  return worker.failed + isolated.failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  const bool ok = bench::parse_sbusd_options(argc, argv, &options, [&](const std::string& arg, const char*) {
    if (arg != "--quick") return -1;
    options.quick = true;
    return 0;
  });
  if (!ok) {
    std::fprintf(stderr, "usage: sbus-isolate-bench --port PORT --sbusd PATH --plugin-dir DIR [--quick]\n");
    return 2;
  }
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sbus-isolate-bench: %s\n", e.what());
    return 1;
  }
}
