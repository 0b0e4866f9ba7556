#include "worker/crash_cooldown.hpp"

#include <algorithm>

namespace sbus {

std::optional<std::int64_t> cooldown_until(const std::vector<std::int64_t>& crash_times, std::int64_t now_ns,
                                           const CrashCooldownOptions& options) {
  if (options.limit <= 0 || crash_times.empty()) return std::nullopt;
  const std::int64_t last = crash_times.back();
  const std::int64_t cooldown = options.cooldown.count();
  const std::int64_t until = last + cooldown;
  if (now_ns >= until) return std::nullopt;
  const auto recent = std::count_if(crash_times.begin(), crash_times.end(),
                                    [&](std::int64_t at) { return at >= last - cooldown && at <= last; });
  if (recent < options.limit) return std::nullopt;
  return until;
}

}  // namespace sbus
