// sbus-abi-bench: what the C ABI costs per call, by the language of the
// service (docs/performance.md, "Plugins by language").
//
//   sbus-abi-bench --port PORT --sbusd PATH --plugin-dir DIR
//                  [--calls N] [--rounds R] [--in-process-calls M] [--quick]
//
// End to end: one sbusd on the broker at 127.0.0.1:PORT serves echo
// services in C++ (test.echo, twice: the second is the control, C++ against
// itself), C (c_example's echo), Rust and Go, called one at a time from one
// sbus::Sender. A call's time is mostly the broker's and the sender's, and
// the machine's load changes from moment to moment, so each service is set
// against C++ call by call: R rounds (default 25), each with N calls
// (default 200) to every service, alternating with as many to C++; the
// ratio is taken within each round, and the median of the rounds' ratios
// reported with their quartiles. The control row shows how far apart two
// identical services come out: the method's resolution.
//
// In process: each service loaded through sbusd's loader and called directly
// (abi_inprocess.hpp), M calls per service per round (default 20000), the
// nanoseconds per call of the entry point and the host functions it calls.
// --quick: 6 rounds of 100 calls, 5000 calls in process.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sbus/sender.hpp>

#include "abi_inprocess.hpp"
#include "child_process.hpp"
#include "run_stats.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kNode = "bench-abi";
constexpr const char* kSecret = "sbus-abi-bench secret, 16 bytes or more";
constexpr const char* kParams = R"({"n":[1,2,3],"s":"echo"})";

struct Service {
  const char* label;
  const char* name;  // CATEGORY.SERVICE
  const char* yaml;
  const char* plugin;
  const char* export_name;
};

// The first is the reference every other is paired with.
const Service kServices[] = {
    {"C++", "cpp.echo", "  - name: cpp.echo\n    plugin: test\n    export: echo\n", "test", "echo"},
    {"C++ again", "cpp2.echo", "  - name: cpp2.echo\n    plugin: test\n    export: echo\n", "test", "echo"},
    {"C", "c.echo", "  - name: c.echo\n    plugin: c_example\n", "c_example", "echo"},
    {"Rust", "rust.echo", "  - name: rust.echo\n    plugin: rust_example\n", "rust_example", "echo"},
    {"Go", "go.echo", "  - name: go.echo\n    plugin: go_example\n", "go_example", "echo"},
};
constexpr std::size_t kCount = sizeof kServices / sizeof kServices[0];

struct Options {
  int port = 0;
  std::string sbusd;
  std::string plugin_dir;
  int calls = 200;
  int rounds = 25;
  int in_process_calls = 20000;
};

// Nearest-rank quantile (0 < q <= 1).
double quantile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  std::size_t rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
  return values[std::clamp<std::size_t>(rank, 1, values.size()) - 1];
}

// All a service's calls; for the others, each call's latency less that of
// the call to C++ made beside it.
struct Totals {
  std::vector<double> latencies_us;
  std::vector<double> paired_us;
};

double call_us(sbus::Sender& sender, const Service& service) {
  const std::string address = std::string(kNode) + "." + service.name;
  const auto before = Clock::now();
  const sbus::CallResult result = sender.call(address, kParams, 10s);
  if (!result.ok())
    throw std::runtime_error(std::string(service.name) + ": " + result.error_code + " " + result.message);
  return std::chrono::duration<double, std::micro>(Clock::now() - before).count();
}

double sum(const std::vector<double>& values) {
  double total = 0;
  for (double v : values) total += v;
  return total;
}

// One pair's round: `calls` calls to each, alternating call by call (the
// reference first on even calls), so that what the machine does meanwhile
// weighs on both alike. Returns the other's rate and p50 against the
// reference's, less 1.
std::pair<double, double> run_pair(sbus::Sender& sender, std::size_t other, int calls, std::vector<Totals>* totals) {
  std::vector<double> reference_us;
  std::vector<double> other_us;
  for (int i = 0; i < calls; ++i) {
    if (i % 2 == 0) {
      reference_us.push_back(call_us(sender, kServices[0]));
      other_us.push_back(call_us(sender, kServices[other]));
    } else {
      other_us.push_back(call_us(sender, kServices[other]));
      reference_us.push_back(call_us(sender, kServices[0]));
    }
  }
  // One call at a time: calls/s is the inverse of the mean latency.
  const double rate_ratio = sum(reference_us) / sum(other_us) - 1.0;
  const double p50_ratio = bench::median(other_us) / bench::median(reference_us) - 1.0;
  auto keep = [](Totals* t, const std::vector<double>& v) {
    t->latencies_us.insert(t->latencies_us.end(), v.begin(), v.end());
  };
  keep(&(*totals)[0], reference_us);
  keep(&(*totals)[other], other_us);
  for (std::size_t i = 0; i < other_us.size(); ++i) (*totals)[other].paired_us.push_back(other_us[i] - reference_us[i]);
  return {rate_ratio, p50_ratio};
}

std::string percent(double ratio) {
  char text[16];
  std::snprintf(text, sizeof text, "%+.1f%%", 100.0 * ratio);
  return text;
}

std::string spread(const std::vector<double>& ratios) {
  return percent(bench::median(ratios)) + " [" + percent(quantile(ratios, 0.25)) + ", " +
         percent(quantile(ratios, 0.75)) + "]";
}

// The pairs, and the table.
void measure_end_to_end(sbus::Sender& sender, const Options& options) {
  std::vector<Totals> totals(kCount);
  std::vector<std::vector<double>> rate_ratios(kCount);
  std::vector<std::vector<double>> p50_ratios(kCount);
  std::vector<Totals> warm_up(kCount);
  for (std::size_t i = 1; i < kCount; ++i) run_pair(sender, i, options.calls / 4 + 1, &warm_up);
  for (int round = 0; round < options.rounds; ++round) {
    for (std::size_t i = 1; i < kCount; ++i) {
      const auto [rate, p50] = run_pair(sender, i, options.calls, &totals);
      rate_ratios[i].push_back(rate);
      p50_ratios[i].push_back(p50);
    }
  }
  std::printf(
      "End to end: %d rounds; in each, %d calls to each service alternating call by call with as many\n"
      "to C++; vs C++: median of the rounds' ratios [first quartile, third quartile]; paired: the\n"
      "median of (a call's latency - the C++ call's beside it), in us and in %% of C++'s p50\n",
      options.rounds, options.calls);
  std::printf("%-10s %9s %8s  %-26s %-26s %s\n", "plugin", "calls/s", "p50 us", "calls/s vs C++", "p50 vs C++",
              "paired");
  const double reference_p50 = bench::median(totals[0].latencies_us);
  for (std::size_t i = 0; i < kCount; ++i) {
    const double rate = 1e6 * static_cast<double>(totals[i].latencies_us.size()) / sum(totals[i].latencies_us);
    std::string paired;
    if (i != 0) {
      const double difference = bench::median(totals[i].paired_us);
      char text[48];
      std::snprintf(text, sizeof text, "%+.1f us (%s)", difference, percent(difference / reference_p50).c_str());
      paired = text;
    }
    std::printf("%-10s %9.0f %8.1f  %-26s %-26s %s\n", kServices[i].label, rate, bench::median(totals[i].latencies_us),
                i == 0 ? "" : spread(rate_ratios[i]).c_str(), i == 0 ? "" : spread(p50_ratios[i]).c_str(),
                paired.c_str());
  }
}

void measure_in_process(const Options& options) {
  std::vector<bench::InProcessService> services;
  for (const Service& service : kServices) services.push_back({service.label, service.plugin, service.export_name});
  const int rounds = 15;
  const std::vector<bench::InProcessFigure> figures =
      bench::measure_in_process(options.plugin_dir, services, kParams, rounds, options.in_process_calls);
  std::printf(
      "\nIn process (sbusd's loader, no broker): %d rounds of %d calls per service; ns of the thread's\n"
      "CPU time per call; vs C++: median of the rounds' ratios\n",
      rounds, options.in_process_calls);
  std::printf("%-10s %9s %10s %10s %12s\n", "plugin", "ns/call", "vs C++", "ns vs C++", "wall ns/call");
  for (std::size_t i = 0; i < figures.size(); ++i) {
    const bench::InProcessFigure& f = figures[i];
    std::printf("%-10s %9.0f %10s %+10.0f %12.0f\n", f.label.c_str(), f.ns_per_call,
                i == 0 ? "" : percent(f.vs_first).c_str(), f.ns_per_call - figures[0].ns_per_call, f.wall_ns);
  }
}

int run(const Options& options) {
  const std::string broker = "amqp://guest:guest@127.0.0.1:" + std::to_string(options.port) + "/%2f";
  const std::string dir = "/tmp/sbus-abi-bench." + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::ofstream config(dir + "/sbusd.yaml");
  config << "node: " << kNode << "\nbrokers: [" << broker << "]\nsecret: \"" << kSecret
         << "\"\nplugin_dir: " << std::filesystem::absolute(options.plugin_dir).string() << "\nstate_dir: " << dir
         << "/state\nlog_level: warn\nservices:\n";
  for (const Service& service : kServices) config << service.yaml;
  config.close();
  bench::SpawnOptions spawn;
  spawn.args = {options.sbusd, "--config", dir + "/sbusd.yaml"};
  const pid_t sbusd = bench::spawn(spawn);

  sbus::SenderOptions sender_options;
  sender_options.brokers = {broker};
  sender_options.secret = kSecret;
  sbus::Sender sender(sender_options);
  bool up = false;
  for (int attempt = 0; attempt < 60 && !up; ++attempt) {
    try {
      up = sender.ping(kNode, 1s);
    } catch (const sbus::SenderError&) {
      std::this_thread::sleep_for(500ms);
    }
  }
  int rc = 1;
  try {
    if (!up) throw std::runtime_error("sbusd did not answer PING within 30 s");
    measure_end_to_end(sender, options);
    rc = 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sbus-abi-bench: %s\n", e.what());
  }
  bench::stop_process(sbusd, 10s);
  std::filesystem::remove_all(dir);
  if (rc != 0) return rc;
  measure_in_process(options);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      options.rounds = 6;
      options.calls = 100;
      options.in_process_calls = 5000;
      continue;
    }
    if (i + 1 == argc) break;
    if (arg == "--port") options.port = std::atoi(argv[i + 1]);
    if (arg == "--sbusd") options.sbusd = argv[i + 1];
    if (arg == "--plugin-dir") options.plugin_dir = argv[i + 1];
    if (arg == "--calls") options.calls = std::atoi(argv[i + 1]);
    if (arg == "--rounds") options.rounds = std::atoi(argv[i + 1]);
    if (arg == "--in-process-calls") options.in_process_calls = std::atoi(argv[i + 1]);
    ++i;
  }
  if (options.port <= 0 || options.sbusd.empty() || options.plugin_dir.empty() || options.calls <= 0 ||
      options.rounds <= 0 || options.in_process_calls <= 0) {
    std::fprintf(stderr,
                 "usage: sbus-abi-bench --port PORT --sbusd PATH --plugin-dir DIR [--calls N] [--rounds R] "
                 "[--in-process-calls M] [--quick]\n");
    return 2;
  }
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sbus-abi-bench: %s\n", e.what());
    return 1;
  }
}
