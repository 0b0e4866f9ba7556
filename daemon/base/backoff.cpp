#include "base/backoff.hpp"

#include <algorithm>

namespace sbus {

std::chrono::milliseconds Backoff::delay_for(int failure) const {
  std::chrono::milliseconds delay = options_.first;
  for (int i = 1; i < failure && delay < options_.cap; ++i) delay *= 2;
  return std::min(delay, options_.cap);
}

std::chrono::milliseconds Backoff::next() {
  ++failures_;
  const std::chrono::milliseconds delay = delay_for(failures_);
  const auto extra_max = static_cast<long>(static_cast<double>(delay.count()) * options_.jitter);
  if (extra_max <= 0) return delay;
  std::uniform_int_distribution<long> extra(0, extra_max);
  return delay + std::chrono::milliseconds(extra(random_));
}

}  // namespace sbus
