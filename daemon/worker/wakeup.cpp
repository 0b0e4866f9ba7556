#include "worker/wakeup.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "base/error.hpp"

namespace sbus {
namespace {

constexpr std::uint64_t kFired = 1;
constexpr std::uint64_t kSocket = 2;

int add(int epoll_fd, int fd, std::uint32_t events, std::uint64_t tag) {
  epoll_event event{};
  event.events = events;
  event.data.u64 = tag;
  return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event);
}

}  // namespace

Wakeup::Wakeup() : event_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)), epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {
  if (event_fd_ < 0 || epoll_fd_ < 0 || add(epoll_fd_, event_fd_, EPOLLIN, kFired) != 0) {
    const std::string reason = std::strerror(errno);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (event_fd_ >= 0) ::close(event_fd_);
    throw Error("eventfd or epoll for a service thread: " + reason);
  }
}

Wakeup::~Wakeup() {
  ::close(epoll_fd_);
  ::close(event_fd_);
}

void Wakeup::fire() {
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(event_fd_, &one, sizeof(one));
}

bool Wakeup::sleep(bool with_socket, std::optional<std::chrono::nanoseconds> timeout) {
  int millis = -1;
  if (timeout) {
    // Rounded up: a sleep never ends before its timeout.
    millis = static_cast<int>(
        std::chrono::ceil<std::chrono::milliseconds>(std::max(*timeout, std::chrono::nanoseconds::zero())).count());
  }
  bool fired = false;
  bool socket = false;
  if (with_socket) {
    epoll_event events[2];
    const int ready = epoll_wait(epoll_fd_, events, 2, millis);
    for (int i = 0; i < ready; ++i) (events[i].data.u64 == kSocket ? socket : fired) = true;
  } else {
    // poll() on the eventfd alone: the socket, registered only in the
    // epoll, is then left to the connection thread.
    pollfd fd{event_fd_, POLLIN, 0};
    fired = ::poll(&fd, 1, millis) == 1;
  }
  if (fired) {
    std::uint64_t count;
    [[maybe_unused]] ssize_t n = ::read(event_fd_, &count, sizeof(count));
  }
  return socket;
}

bool Wakeup::watch(int fd) {
  return add(epoll_fd_, fd, EPOLLIN | EPOLLEXCLUSIVE | EPOLLET, kSocket) == 0;
}

void Wakeup::unwatch(int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

}  // namespace sbus
