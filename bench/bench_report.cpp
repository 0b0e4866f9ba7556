// sbus-bench's options and its table.
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "bench.hpp"
#include "bench_util.hpp"

namespace bench {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void usage(const std::string& problem) {
  std::cerr
      << "sbus-bench: " << problem
      << "\nusage: sbus-bench --port PORT [--quick] [--soak] [--runs N] [--seconds S] [--soak-calls N]\n"
         "                  [--startup-runs N] [--tls-port PORT --tls-dir DIR] [--sequential-only] [--large-only]\n"
         "                  [--sbusd PATH]\n"
         "                  [--plugin-dir DIR] [--floor PATH] [--floor-tuned PATH]\n";
  std::exit(2);
}

std::string format(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.*f", decimals, value);
  return text;
}

// The ratios of runs taken next to each other (Row::paired), sorted.
std::vector<double> pair_ratios(const Row& row) {
  std::vector<double> ratios = row.ratios;
  for (std::size_t i = 0; row.ratios.empty() && i < row.floor.size() && i < row.sbus.size(); ++i) {
    if (row.floor[i] > 0) ratios.push_back(row.sbus[i] / row.floor[i]);
  }
  std::sort(ratios.begin(), ratios.end());
  return ratios;
}

// The spread of a paired row's ratios (ratio_spread()).
std::string pair_spread(const Row& row) {
  return ratio_spread(pair_ratios(row));
}

}  // namespace

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
  const char* scope = options_.sequential_only  ? "sequential only"
                      : options_.large_only     ? "large bodies only"
                      : options_.pipelined_only ? "pipelined only"
                      : options_.tls_only       ? "TLS only"
                                                : "full";
  std::printf("\nsbus-bench: %s%s, %ld cores (%s), Linux %s, RabbitMQ %s on 127.0.0.1:%d\n",
              options_.quick ? "quick, " : "", scope, sysconf(_SC_NPROCESSORS_ONLN), cpu.c_str(), machine.release,
              broker_version_.c_str(), options_.port);
  std::printf(
      "each figure: median of %d runs of %.1f s (sequential, deadlines, policy: %d windows of %.2f s, the two sides\n"
      "interleaved %d calls at a time; start-up: %d runs); body %zu bytes; floor = raw rabbitmq-c echo;\n"
      "calls/s ratios: the median of the ratios of runs next to each other (their quartiles beside it)\n\n",
      options_.runs, options_.seconds, options_.sequential_runs, options_.sequential_seconds, kBurstCalls,
      options_.startup_runs, body_.size());
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
    const double ratio = !have_ratio ? 0 : row.paired ? median(pair_ratios(row)) : sbus / floor;
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
    const std::string note = row.paired && have_ratio ? pair_spread(row) : row.note;
    std::printf("%-50s %10s %10s %7s  %-10s %-6s %s\n", label.c_str(), floor_text.c_str(), sbus_text.c_str(),
                have_ratio ? format(ratio, 2).c_str() : "-", target.c_str(),
                target.empty() ? "" : (met ? "ok" : "MISSED"), note.c_str());
  }
  std::printf("\n%d target(s) missed", missed);
  if (sbus_errors_ > 0)
    std::printf("; %llu sbus calls answered wrongly", static_cast<unsigned long long>(sbus_errors_));
  std::printf("\n");
  std::fflush(stdout);
}

std::vector<double> Bench::burst_ratios(Runs& runs) {
  std::vector<double> ratios;
  const std::vector<RunStats>& floor = runs[System::kFloor];
  const std::vector<RunStats>& sbus = runs[System::kSbus];
  for (std::size_t i = 0; i < floor.size() && i < sbus.size(); ++i) {
    for (std::size_t j = 0; j < floor[i].burst_seconds.size() && j < sbus[i].burst_seconds.size(); ++j) {
      if (sbus[i].burst_seconds[j] > 0) ratios.push_back(floor[i].burst_seconds[j] / sbus[i].burst_seconds[j]);
    }
  }
  return ratios;
}

// The tail of one window is its slowest few calls: the median of such
// maxima says little. All the windows' calls together, one figure; and how
// far it moved within the run: the ratio in each of kTailBlocks blocks of
// windows one after the other (each still thousands of calls).
void Bench::add_tail_row(Runs& runs) {
  constexpr std::size_t kTailBlocks = 5;
  Row& row = add("  p99.9 latency, all runs' calls", "us", 0);
  const std::size_t windows = std::min(runs[System::kFloor].size(), runs[System::kSbus].size());
  std::vector<double> block_ratios;
  RunStats all[2];
  for (std::size_t block = 0; block < kTailBlocks; ++block) {
    RunStats part[2];
    for (std::size_t i = block * windows / kTailBlocks; i < (block + 1) * windows / kTailBlocks; ++i) {
      for (int side = 0; side < 2; ++side) {
        const std::vector<std::uint64_t>& latencies = runs[side == 0 ? System::kFloor : System::kSbus][i].latencies_ns;
        part[side].latencies_ns.insert(part[side].latencies_ns.end(), latencies.begin(), latencies.end());
        all[side].latencies_ns.insert(all[side].latencies_ns.end(), latencies.begin(), latencies.end());
      }
    }
    const double floor_tail = part[0].latency_us(0.999);
    if (floor_tail > 0 && !part[1].latencies_ns.empty()) block_ratios.push_back(part[1].latency_us(0.999) / floor_tail);
  }
  row.floor.push_back(all[0].latency_us(0.999));
  row.sbus.push_back(all[1].latency_us(0.999));
  if (block_ratios.size() > 1) {
    const auto [low, high] = std::minmax_element(block_ratios.begin(), block_ratios.end());
    char note[64];
    std::snprintf(note, sizeof(note), "(%zu blocks: %.2f-%.2f)", block_ratios.size(), *low, *high);
    row.note = note;
  }
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
    } else if (arg == "--sequential-only") {
      options.sequential_only = true;
    } else if (arg == "--large-only") {
      options.large_only = true;
    } else if (arg == "--pipelined-only") {
      options.pipelined_only = true;
    } else if (arg == "--tls-only") {
      options.tls_only = true;
    } else if (arg == "--floor-tuned") {
      options.floor_tuned = value();
    } else if (arg == "--tls-port") {
      options.tls_port = std::atoi(value().c_str());
    } else if (arg == "--tls-dir") {
      options.tls_dir = value();
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
  if (runs_given || options.quick) options.sequential_runs = 4 * options.runs;
  if (seconds_given || options.quick) options.sequential_seconds = options.seconds / 2;
  if ((options.tls_port > 0) != !options.tls_dir.empty()) usage("--tls-port and --tls-dir go together");
  if (options.runs < 1 || options.seconds <= 0 || options.startup_runs < 1)
    usage("bad --runs, --seconds or --startup-runs");
  const std::string here = self_dir();
  if (options.sbusd.empty()) options.sbusd = here + "/sbusd";
  if (options.floor.empty()) options.floor = here + "/sbus-bench-floor";
  if (options.floor_tuned.empty()) options.floor_tuned = here + "/sbus-bench-floor-tuned";
  if (options.plugin_dir.empty()) options.plugin_dir = fs::weakly_canonical(here + "/../plugins").string();
  return options;
}

}  // namespace bench
