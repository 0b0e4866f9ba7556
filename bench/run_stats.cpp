#include "run_stats.hpp"

#include <algorithm>
#include <cmath>

namespace bench {

double RunStats::latency_us(double p) {
  if (latencies_ns.empty()) return 0;
  std::sort(latencies_ns.begin(), latencies_ns.end());
  const auto n = static_cast<double>(latencies_ns.size());
  std::size_t rank = static_cast<std::size_t>(std::ceil(p * n));
  rank = std::clamp<std::size_t>(rank, 1, latencies_ns.size());
  return static_cast<double>(latencies_ns[rank - 1]) / 1000.0;
}

void RunStats::merge(RunStats other) {
  calls += other.calls;
  errors += other.errors;
  seconds = std::max(seconds, other.seconds);
  cpu_seconds += other.cpu_seconds;
  switches += other.switches;
  latencies_ns.insert(latencies_ns.end(), other.latencies_ns.begin(), other.latencies_ns.end());
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

}  // namespace bench
