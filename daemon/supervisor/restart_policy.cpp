#include "supervisor/restart_policy.hpp"

#include <algorithm>

#include "base/backoff.hpp"

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
  const Backoff backoff({options_.first_delay, options_.max_delay});
  decision.restart_at = now + backoff.delay_for(std::max(rapid_failures_, 1));
  return decision;
}

}  // namespace sbus
