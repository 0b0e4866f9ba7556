// What one measured run yields, and the statistics the table is made of.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bench {

struct RunStats {
  std::uint64_t calls = 0;
  std::uint64_t errors = 0;
  double seconds = 0;
  // Server CPU (utime + stime of every process of the server) over the run.
  double cpu_seconds = 0;
  // Voluntary context switches of the server's threads over the run.
  long switches = 0;
  std::vector<std::uint64_t> latencies_ns;
  // Interleaved runs (run_interleaved()): the seconds of each burst, in
  // order, burst i of one side taken next to burst i of the other.
  std::vector<double> burst_seconds;

  double rate() const { return seconds > 0 ? static_cast<double>(calls) / seconds : 0; }
  // Nearest-rank percentile (0 < p <= 1) of the latencies, in microseconds;
  // sorts them. 0 when there are none.
  double latency_us(double p);
  double cpu_per_10k() const { return calls > 0 ? cpu_seconds * 10000.0 / static_cast<double>(calls) : 0; }
  double switches_per_call() const {
    return calls > 0 ? static_cast<double>(switches) / static_cast<double>(calls) : 0;
  }
  void merge(RunStats other);
};

// The median of `values` (the mean of the middle two for an even count); 0
// for none.
double median(std::vector<double> values);

// The spread of ratios of runs or bursts taken side by side: "(N pairs,
// quartiles A-B, median's 95% CI C-D)"; the interval from the order
// statistics n/2 -+ 0.98 sqrt(n), which hold whatever the distribution, for
// 10 or more. Empty for fewer than 4.
std::string ratio_spread(std::vector<double> ratios);

}  // namespace bench
