// How a service thread sleeps: until another thread fires its Wakeup, or,
// while it holds the worker's reader seat, until the broker socket has data.
//
// The hand-off is an eventfd: fire() writes it, and the sleep that finds it
// written reads it back. A fire while nobody sleeps makes the next sleep
// return at once, so no fire is lost; sleep() may also return early, so the
// sleeper rechecks its condition after each one.
//
// The socket is watched with EPOLLEXCLUSIVE, edge-triggered, and it is the
// connection thread's epoll that registers it next (dispatcher.cpp): the kernel
// walks a socket's exclusive waiters in the order they were added and wakes
// the first one that sleeps. A seat holder asleep with the socket is woken
// instead of the connection thread; one that runs a job, or sleeps without
// the socket, is passed over and the connection thread reads. Whoever is
// woken reads until nothing is left, or tells the connection thread to.
#pragma once

#include <chrono>
#include <optional>

namespace sbus {

class Wakeup {
 public:
  Wakeup();  // throws Error when out of file descriptors
  ~Wakeup();
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;

  // Any thread.
  void fire();

  // The sleeping thread: until fired, until `timeout` has passed, or, with
  // `with_socket`, until the watched socket has new data. True when that
  // socket has: the caller reads it. An interrupted sleep returns false.
  bool sleep(bool with_socket, std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

  // Any thread: starts or stops watching the broker socket `fd` (one at a
  // time). False, with errno set, when the kernel refuses.
  bool watch(int fd);
  void unwatch(int fd);

 private:
  int event_fd_ = -1;
  int epoll_fd_ = -1;  // the eventfd and the watched socket
};

}  // namespace sbus
