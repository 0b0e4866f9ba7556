#include "worker/heap_trim.hpp"

#include <malloc.h>

#include <cstdlib>

namespace sbus {
namespace {

// Short enough that the RSS is down soon after a run of large calls (the
// benchmark reads it half a second after), long enough that calls in a run
// (a few ms apart, more when the machine is busy) do not trim between them.
constexpr std::chrono::milliseconds kQuiet{200};

// The worker's M_TRIM_THRESHOLD (run_worker()), and the one a trim uses.
constexpr int kTrimThreshold = 64 * 1024 * 1024;
constexpr int kTrimNowThreshold = 128 * 1024;

void trim_heap() {
  // glibc trims a thread arena's top on a free() of a block of 64 KiB or
  // more, when the top is larger than the threshold: lowered for one such
  // free. (Another thread freeing meanwhile may trim its own: harmless.)
  mallopt(M_TRIM_THRESHOLD, kTrimNowThreshold);
  void* volatile block = std::malloc(kLargeBodyBytes);  // volatile: the pair is not optimized away
  std::free(block);
  mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
  ::malloc_trim(0);
}

}  // namespace

std::optional<HeapTrim::Clock::time_point> HeapTrim::due() const {
  if (!last_) return std::nullopt;
  return *last_ + quiet_;
}

bool HeapTrim::trim_if_due(Clock::time_point now) {
  if (!last_ || now < *last_ + quiet_) return false;
  last_.reset();
  trim_();
  return true;
}

HeapTrim& thread_heap_trim() {
  thread_local HeapTrim trim(kQuiet, trim_heap);
  return trim;
}

void set_heap_thresholds() {
  // Bodies up to 16 MiB are taken from the heap, not mapped afresh (and
  // faulted in page by page) each time; what they leave goes back once a
  // run of them is over (HeapTrim), not at each free.
  mallopt(M_MMAP_THRESHOLD, 16 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
}

}  // namespace sbus
