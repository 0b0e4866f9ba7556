// How long a call may wait, given its own timeout and the deadline it
// inherits (SenderOptions::inherited_deadline): the time left until the
// inherited deadline, less a margin so that the caller still has time to
// answer its own caller, or the call's own timeout when that is shorter.
// Pure: the caller passes the clock.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>

namespace sbus {

// The margin kept before an inherited deadline: a tenth of what is left,
// at most 100 ms.
inline constexpr std::chrono::milliseconds kMaxDeadlineMargin{100};

inline std::chrono::milliseconds deadline_margin(std::chrono::milliseconds left) {
  return std::min(kMaxDeadlineMargin, left / 10);
}

// The time a call may wait; std::nullopt when the inherited deadline leaves
// nothing (the call is not to be made).
inline std::optional<std::chrono::milliseconds> call_budget(
    std::chrono::milliseconds timeout, std::optional<std::chrono::system_clock::time_point> inherited,
    std::chrono::system_clock::time_point now) {
  if (!inherited) return timeout;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*inherited - now);
  const auto usable = left - deadline_margin(left);
  if (usable.count() <= 0) return std::nullopt;
  return std::min(timeout, usable);
}

}  // namespace sbus
