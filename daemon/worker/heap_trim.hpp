// When a worker thread gives the heap's free pages back after large bodies.
//
// glibc keeps freed memory for reuse. Given back at once after each large
// body (malloc_trim), the next one faulted all its pages in again and had
// the kernel clear them: a quarter of a 1 MiB call's CPU. Now the trim waits
// until no large body has come for `quiet`: a run of large calls reuses the
// same pages, and the RSS is back down shortly after the run.
//
// One per thread (thread_heap_trim()): each thread allocates from an arena
// of its own, and the free memory at the top of an arena other than the
// main one goes back only from a free() on it (malloc_trim() gives back the
// main heap's top and the free pages inside every arena). A thread notes the
// large bodies it handled; when idle (the connection thread between turns,
// a service thread with nothing queued) it calls trim_if_due() and sleeps
// no longer than due().
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>

namespace sbus {

class HeapTrim {
 public:
  using Clock = std::chrono::steady_clock;
  // `trim` gives the free pages back (the calling thread's arena's too).
  HeapTrim(Clock::duration quiet, void (*trim)()) : quiet_(quiet), trim_(trim) {}

  // A body (params, reply) larger than kLargeBodyBytes went through this
  // thread at `now`.
  void note_large(Clock::time_point now) { last_ = now; }
  // When the pending trim is due; nullopt when none is pending.
  std::optional<Clock::time_point> due() const;
  // Trims when one is due at `now`: true if it did.
  bool trim_if_due(Clock::time_point now);

 private:
  Clock::duration quiet_;
  void (*trim_)();
  std::optional<Clock::time_point> last_;  // the last large body since the last trim
};

// Bodies larger than this are noted; smaller ones leave no pages behind
// worth a trim.
inline constexpr std::size_t kLargeBodyBytes = 64 * 1024;

// The calling thread's, in the worker: its arena and malloc_trim(0), 200 ms
// after its last large body.
HeapTrim& thread_heap_trim();

// The worker's malloc thresholds, set once at its start: fixed (glibc's
// sliding ones grow and trim the heap again and again when blocks are taken
// on one thread and freed on another, as params and replies are).
void set_heap_thresholds();

}  // namespace sbus
