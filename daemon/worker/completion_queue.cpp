#include "worker/completion_queue.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

namespace sbus {

CompletionQueue::CompletionQueue() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) std::abort();  // out of file descriptors at start: nothing to serve with
}

CompletionQueue::~CompletionQueue() { ::close(fd_); }

void CompletionQueue::push(Outcome outcome) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    was_empty = items_.empty();
    items_.push_back(std::move(outcome));
  }
  if (was_empty) {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof(one));
  }
}

void CompletionQueue::take(std::vector<Outcome>* out) {
  std::uint64_t count;
  [[maybe_unused]] ssize_t n = ::read(fd_, &count, sizeof(count));
  std::lock_guard<std::mutex> lock(mutex_);
  out->swap(items_);
  items_.clear();
}

}  // namespace sbus
