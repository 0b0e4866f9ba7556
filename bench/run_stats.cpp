#include "run_stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

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

std::string ratio_spread(std::vector<double> ratios) {
  std::sort(ratios.begin(), ratios.end());
  const std::size_t n = ratios.size();
  if (n < 4) return {};
  auto format = [](double value) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.2f", value);
    return std::string(text);
  };
  std::string text =
      "(" + std::to_string(n) + " pairs, quartiles " + format(ratios[n / 4]) + "-" + format(ratios[(3 * n) / 4]);
  const auto half = static_cast<std::size_t>(0.98 * std::sqrt(static_cast<double>(n)));
  if (n >= 10 && half < n / 2)
    text += ", median's 95% CI " + format(ratios[n / 2 - half]) + "-" + format(ratios[std::min(n - 1, n / 2 + half)]);
  return text + ")";
}

}  // namespace bench
