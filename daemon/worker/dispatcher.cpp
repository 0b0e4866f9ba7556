#include "worker/dispatcher.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.hpp"

namespace sbus {

Dispatcher::~Dispatcher() {
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

bool Dispatcher::open(int signal_fd, int completion_fd, int held_fd) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return false;
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kSignalEvent;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, signal_fd, &event) != 0) return false;
  event.data.u64 = kCompletionEvent;
  return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, completion_fd, &event) == 0 &&
         epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, held_fd, &event) == 0;
}

bool Dispatcher::submit(Job& job, std::size_t runner) {
  bool wake = false;
  if (!window_->admits(runner) || !runners_[runner]->try_submit(job, &wake)) return false;
  ++outstanding_;
  window_->take(runner);
  if (wake) {
    to_wake_.push_back(runners_[runner].get());
    seat_wanted_ = runner;
  }
  return true;
}

void Dispatcher::finished(std::size_t runner) {
  --outstanding_;
  window_->give_back(runner);
}

void Dispatcher::forget_pending(std::vector<std::string>* handled_keys, std::vector<std::string>* tokens) {
  for (std::size_t i = 0; i < runners_.size(); ++i) {
    const std::size_t dropped = runners_[i]->discard_queued(handled_keys, tokens);
    outstanding_ -= dropped;
    window_->give_back(i, dropped);
  }
}

bool Dispatcher::watch_socket(int fd) {
  if (seat_ != kNoSeat && !runners_[seat_]->watch_socket(fd)) {
    SBUS_LOG(kWarn) << "epoll: cannot watch the socket from a service thread: " << std::strerror(errno);
    seat_ = kNoSeat;
  }
  epoll_event event{};
  event.events = EPOLLIN | EPOLLEXCLUSIVE;
  event.data.u64 = kSocketEvent;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    SBUS_LOG(kError) << "epoll: cannot watch the connection's socket: " << std::strerror(errno);
    return false;
  }
  return true;
}

void Dispatcher::unwatch_socket(int fd) {
  if (fd < 0) return;
  if (seat_ != kNoSeat) runners_[seat_]->unwatch_socket(fd);
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

bool Dispatcher::take_wakes(std::vector<ServiceRunner*>* out, int fd) {
  bool ok = true;
  if (seat_wanted_ != kNoSeat && seat_wanted_ != seat_ && fd >= 0) ok = move_seat(seat_wanted_, fd);
  seat_wanted_ = kNoSeat;
  out->swap(to_wake_);
  reads_since_wake_ = 0;
  return ok;
}

void Dispatcher::fire(std::vector<ServiceRunner*>* runners) {
  for (ServiceRunner* runner : *runners) runner->wake();
  runners->clear();
}

bool Dispatcher::wake_services(int fd) {
  const bool ok = take_wakes(&waking_, fd);
  fire(&waking_);
  return ok;
}

bool Dispatcher::count_read(int fd) {
  return ++reads_since_wake_ < kWakeBatch || wake_services(fd);
}

bool Dispatcher::move_seat(std::size_t runner, int fd) {
  if (seat_ != kNoSeat) runners_[seat_]->unwatch_socket(fd);
  seat_ = kNoSeat;
  if (!runners_[runner]->watch_socket(fd)) return true;  // the connection thread reads, as without a seat
  seat_ = runner;
  // The connection thread's registration goes behind the new one.
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  epoll_event event{};
  event.events = EPOLLIN | EPOLLEXCLUSIVE;
  event.data.u64 = kSocketEvent;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    SBUS_LOG(kError) << "epoll: cannot watch the connection's socket: " << std::strerror(errno) << "; reconnecting";
    return false;
  }
  return true;
}

void Dispatcher::stop(std::chrono::steady_clock::time_point deadline) {
  for (auto& runner : runners_) {
    if (!runner->stop_by(deadline)) {
      SBUS_LOG(kWarn) << "service " << runner->config().name
                      << " did not return by the drain timeout: exiting without it";
      (void)runner.release();
    }
  }
  runners_.clear();
  seat_ = kNoSeat;
}

std::vector<Dispatcher::Abandoned> Dispatcher::abandon_running() {
  std::vector<Abandoned> abandoned;
  for (std::size_t i = 0; i < runners_.size(); ++i) {
    std::optional<ServiceRunner::Abandoned> call = runners_[i]->abandon_call();
    if (!call) continue;
    --outstanding_;
    abandoned.push_back({i, std::move(*call)});
  }
  return abandoned;
}

}  // namespace sbus
