// How many log lines of one kind may be written: at most `burst` per
// `interval`, the rest counted and dropped. Pure: the caller passes the
// time, so tests drive it with made-up times. Not thread-safe: log.cpp
// holds one behind a mutex (SBUS_LOG_LIMITED).
//
// A kind is a fixed name chosen by the code that logs ("refused message"),
// never text from outside: the table holds one entry per kind.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace sbus {

struct LogLimitOptions {
  std::size_t burst = 20;
  std::chrono::milliseconds interval{10000};
};

class LogLimiter {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  struct Verdict {
    bool write = false;
    // Lines of this kind dropped since the last one written: reported (and
    // reset) with the next line that is written.
    std::uint64_t suppressed = 0;
  };

  explicit LogLimiter(LogLimitOptions options = {}) : options_(options) {}

  Verdict admit(std::string_view kind, TimePoint now);

 private:
  struct Kind {
    TimePoint window_start{};
    std::size_t written = 0;  // in the current window
    std::uint64_t suppressed = 0;
  };
  LogLimitOptions options_;
  std::map<std::string, Kind, std::less<>> kinds_;
};

}  // namespace sbus
