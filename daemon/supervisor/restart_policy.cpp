#include "supervisor/restart_policy.hpp"

#include <algorithm>

namespace sbus {

RestartPolicy::Decision RestartPolicy::on_exit(Exit exit, std::chrono::milliseconds uptime, TimePoint now) {
  Decision decision;
  if (exit == Exit::kFatal) {
    decision.give_up = true;
    return decision;
  }
  if (exit == Exit::kCrashDuringCall) {
    decision.restart_at = now;
    return decision;
  }
  rapid_failures_ = uptime >= options_.healthy_after ? 0 : rapid_failures_ + 1;
  std::chrono::milliseconds delay = options_.first_delay;
  for (int i = 1; i < rapid_failures_ && delay < options_.max_delay; ++i) delay *= 2;
  decision.restart_at = now + std::min(delay, options_.max_delay);
  return decision;
}

}  // namespace sbus
