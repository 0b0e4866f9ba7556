#include "worker/completion_queue.hpp"

#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <utility>

namespace sbus {

CompletionQueue::CompletionQueue()
    : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      timer_fd_(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {
  // Out of file descriptors at start: nothing to serve with.
  if (fd_ < 0 || timer_fd_ < 0) std::abort();
}

CompletionQueue::~CompletionQueue() {
  ::close(timer_fd_);
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

void CompletionQueue::hold(Outcome outcome) {
  std::lock_guard<std::mutex> lock(mutex_);
  items_.push_back(std::move(outcome));
  // An awake connection thread takes it on its next turn (watch() finds it).
  if (!watching_ || armed_) return;
  itimerspec at{};
  at.it_value.tv_nsec = std::chrono::nanoseconds(kHeldFor).count();
  armed_ = timerfd_settime(timer_fd_, 0, &at, nullptr) == 0;
  if (!armed_) wake_locked();  // no timer: no wait
}

void CompletionQueue::take_outcomes(std::vector<Outcome>* out) {
  out->clear();
  std::lock_guard<std::mutex> lock(mutex_);
  out->swap(items_);
  disarm_locked();
}

// Disarming also clears an expiry not read yet: the timer's fd is not
// readable after it.
void CompletionQueue::disarm_locked() {
  if (!armed_) return;
  armed_ = false;
  const itimerspec never{};
  timerfd_settime(timer_fd_, 0, &never, nullptr);
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
  disarm_locked();
  return std::exchange(read_owed_, false);
}

}  // namespace sbus
