// Exponential back-off: the delay before the next try after a run of
// failures, doubling from `first` up to `cap`, with an optional random
// extra of up to `jitter` of the delay so that many processes failing
// together do not retry together. Used for worker restarts, reconnects and
// message retries.
//
// Not thread-safe; a Backoff belongs to the one loop that retries.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace sbus {

class Backoff {
 public:
  struct Options {
    std::chrono::milliseconds first{100};
    std::chrono::milliseconds cap{30000};
    double jitter = 0.0;  // 0.25: add up to a quarter of the delay
  };

  explicit Backoff(Options options, std::uint32_t seed = 0) : options_(options), random_(seed) {}

  // The delay after the `failure`th failure in a row (1 is the first), without
  // jitter: first * 2^(failure - 1), at most cap.
  std::chrono::milliseconds delay_for(int failure) const;

  // Counts one more failure and returns the delay to wait before the next
  // try, jitter included.
  std::chrono::milliseconds next();

  // A success: the next failure waits `first` again.
  void reset() { failures_ = 0; }

  int failures() const { return failures_; }

 private:
  Options options_;
  int failures_ = 0;
  std::minstd_rand random_;
};

}  // namespace sbus
