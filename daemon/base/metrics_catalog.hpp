// The metrics sbusd serves on `metrics_listen` (docs/metrics.md): one row a
// family, read by the worker (the buckets of its latency histogram), by the
// supervisor (the HELP and TYPE lines it writes before each family's
// samples) and by tests/unit/metrics_catalog_test.cpp, which holds the
// reference in docs/metrics.md against it.
#pragma once

#include <array>
#include <span>
#include <string_view>

namespace sbus {

struct MetricFamily {
  std::string_view name;    // with the sbus_ prefix; a counter's ends in _total
  std::string_view type;    // counter, gauge or histogram, as Prometheus writes it
  std::string_view labels;  // as the reference lists them, besides `node`
  std::string_view help;    // one line
};

// Every family, in the order they are written.
std::span<const MetricFamily> metric_families();

// The family a sample belongs to: its name, or a histogram's name for its
// _bucket, _sum and _count samples. Null when no family has it.
const MetricFamily* family_of_sample(std::string_view sample_name);

// Upper bounds of sbus_service_duration_seconds' buckets, in seconds (the
// +Inf bucket is implicit): 100 µs to 30 s.
inline constexpr std::array<double, 16> kDurationBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                            0.05,   0.1,     0.25,   0.5,   1,      2.5,   10,   30};

}  // namespace sbus
