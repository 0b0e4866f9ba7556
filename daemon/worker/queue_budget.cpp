#include "worker/queue_budget.hpp"

#include <algorithm>
#include <cassert>

namespace sbus {

bool QueueBudget::take(std::size_t bytes) {
  if (jobs_ >= max_jobs_) return false;
  if (jobs_ > 0 && bytes > max_bytes_ - std::min(bytes_, max_bytes_)) return false;
  ++jobs_;
  bytes_ += bytes;
  return true;
}

void QueueBudget::give_back(std::size_t bytes) {
  assert(jobs_ > 0 && bytes_ >= bytes);
  --jobs_;
  bytes_ -= bytes;
}

}  // namespace sbus
