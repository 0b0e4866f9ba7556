// The supervisor's time, behind an interface (as LevelDB's Env): the
// supervisor asks a Clock instead of std::chrono, so that unit tests drive
// restart back-offs, replacement deadlines and the KILL escalation with a
// fake one. SystemClock is the real one.
//
// Single-threaded: used from the supervisor's loop only.
#pragma once

#include <chrono>
#include <cstdint>

namespace sbus {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;

  // Monotonic time: deadlines, uptimes and restart times. Its count is
  // CLOCK_MONOTONIC's, the one the crash journal shares with the workers.
  virtual TimePoint now() const = 0;
  // Wall-clock milliseconds since the epoch: only for what `sbus stats`
  // shows of a worker's last exit.
  virtual std::int64_t unix_ms() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  std::int64_t unix_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace sbus
