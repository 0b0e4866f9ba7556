#include "worker/completion_queue.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <utility>

namespace sbus {

CompletionQueue::CompletionQueue() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) std::abort();  // out of file descriptors at start: nothing to serve with
}

CompletionQueue::~CompletionQueue() {
  ::close(fd_);
}

// The eventfd is written and read under the lock, together with `woken_`:
// so take() reads it exactly when push() wrote it, and a loop that calls
// take() on every turn makes no read that finds nothing.
void CompletionQueue::push(Outcome outcome) {
  std::lock_guard<std::mutex> lock(mutex_);
  items_.push_back(std::move(outcome));
  if (watching_) wake_locked();
}

bool CompletionQueue::watch() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!items_.empty()) return false;
  watching_ = true;
  return true;
}

void CompletionQueue::unwatch() {
  std::lock_guard<std::mutex> lock(mutex_);
  watching_ = false;
}

void CompletionQueue::wake() {
  std::lock_guard<std::mutex> lock(mutex_);
  wake_locked();
}

void CompletionQueue::owe_read() {
  std::lock_guard<std::mutex> lock(mutex_);
  read_owed_ = true;
  wake_locked();
}

void CompletionQueue::wake_locked() {
  if (woken_) return;
  woken_ = true;
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof(one));
}

bool CompletionQueue::take(std::vector<Outcome>* out) {
  out->clear();
  std::lock_guard<std::mutex> lock(mutex_);
  if (woken_) {
    woken_ = false;
    std::uint64_t count;
    [[maybe_unused]] ssize_t n = ::read(fd_, &count, sizeof(count));
  }
  out->swap(items_);
  return std::exchange(read_owed_, false);
}

}  // namespace sbus
