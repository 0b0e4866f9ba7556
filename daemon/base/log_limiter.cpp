#include "base/log_limiter.hpp"

#include <utility>

namespace sbus {

LogLimiter::Verdict LogLimiter::admit(std::string_view kind, TimePoint now) {
  auto found = kinds_.find(kind);
  if (found == kinds_.end()) {
    found = kinds_.emplace(std::string(kind), Kind{}).first;
    found->second.window_start = now;
  }
  Kind& state = found->second;
  if (now - state.window_start >= options_.interval) {
    state.window_start = now;
    state.written = 0;
  }
  Verdict verdict;
  if (state.written >= options_.burst) {
    ++state.suppressed;
    return verdict;
  }
  ++state.written;
  verdict.write = true;
  verdict.suppressed = std::exchange(state.suppressed, 0);
  return verdict;
}

}  // namespace sbus
