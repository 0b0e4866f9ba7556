// How deliveries reach the worker's service threads: the runners, the
// delivery window they share (DeliveryWindow), the wake-ups of the threads
// that got a job, and the reader seat. Also the connection thread's epoll,
// on which it sleeps: the signals, the completion queue and the broker
// socket.
//
// Wake-ups are batched: a service thread that got a job while asleep is
// woken once the thread that read the job is about to sleep, or to read the
// next kWakeBatch deliveries that rabbitmq-c has buffered. Each wake-up then
// starts several jobs, not one; and a service thread that finishes quickly
// finds the broker session's lock free and publishes its reply itself
// (inline completion, Worker::complete()).
//
// The reader seat: the runner woken last holds it. While idle its thread
// sleeps on the broker socket too, registered ahead of the connection
// thread's epoll, so the kernel wakes it, not the connection thread, when a
// delivery comes (wakeup.hpp): if its caller waits for each reply before
// the next call, that next call wakes only it, which reads it
// (Worker::read_socket()) and runs it without another wake-up.
//
// Not thread-safe: used with the broker session's lock held, by the
// connection thread or by a service thread that holds it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "worker/delivery_window.hpp"
#include "worker/job.hpp"
#include "worker/service_runner.hpp"

namespace sbus {

class Dispatcher {
 public:
  // At most this many deliveries that rabbitmq-c has buffered are read
  // before the service threads they went to are woken.
  static constexpr std::size_t kWakeBatch = 16;
  // What woke the connection thread's epoll_wait().
  static constexpr std::uint64_t kSignalEvent = 0;
  static constexpr std::uint64_t kCompletionEvent = 1;
  static constexpr std::uint64_t kSocketEvent = 2;

  Dispatcher() = default;
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Creates the epoll, watching `signal_fd`, `completion_fd` and
  // `held_fd` (CompletionQueue's two); false (errno set) when the kernel
  // refuses.
  bool open(int signal_fd, int completion_fd, int held_fd);
  int epoll_fd() const { return epoll_fd_; }

  // The runners, in index order, then start() once for the window.
  void add(std::unique_ptr<ServiceRunner> runner) { runners_.push_back(std::move(runner)); }
  void start(std::size_t prefetch) { window_.emplace(prefetch, runners_.size()); }
  std::size_t size() const { return runners_.size(); }
  ServiceRunner& runner(std::size_t index) { return *runners_[index]; }
  const DeliveryWindow& window() const { return *window_; }
  // Jobs handed to services and not completed yet.
  std::size_t outstanding() const { return outstanding_; }

  // Hands `job` to `runner`; false, the job untouched, when the runner's
  // share of the window or its queue is full. A sleeping runner is woken
  // with the next wake_services() or take_wakes().
  bool submit(Job& job, std::size_t runner);
  // An outcome of `runner` came back.
  void finished(std::size_t runner);
  // Drops the jobs not started yet: the broker delivers them again. Their
  // handled-store keys go to `handled_keys`, their tokens to `tokens`, when
  // given.
  void forget_pending(std::vector<std::string>* handled_keys = nullptr, std::vector<std::string>* tokens = nullptr);

  // Registers a new connection's socket: first with the seat holder, then
  // with the epoll, which the kernel then wakes only when the seat holder
  // does not sleep on the socket. False when the epoll refuses.
  bool watch_socket(int fd);
  // Before the socket is closed. (A socket rabbitmq-c closed itself has
  // left every epoll already.)
  void unwatch_socket(int fd);

  // Takes the runners to wake into *out, for the caller to fire() once it
  // has let go of the session's lock, and seats the one woken last. `fd`:
  // the socket, or -1 when the connection does not serve (no seat moves).
  // False when the epoll lost the socket (the connection must be given up).
  bool take_wakes(std::vector<ServiceRunner*>* out, int fd);
  static void fire(std::vector<ServiceRunner*>* runners);
  // The connection thread: take_wakes() and fire() at once.
  bool wake_services(int fd);
  // The connection thread read a buffered frame: wakes the services every
  // kWakeBatch of them. As take_wakes().
  bool count_read(int fd);

  // Stops the runners; a service thread still busy at `deadline` is
  // abandoned, not joined: the process exits with it still in the plugin (a
  // stuck service must not keep the worker from stopping), and its runner
  // is never destroyed.
  void stop(std::chrono::steady_clock::time_point deadline);
  // The calls and messages still running, given up on (drain timeout).
  struct Abandoned {
    std::size_t runner;
    ServiceRunner::Abandoned call;
  };
  std::vector<Abandoned> abandon_running();

 private:
  static constexpr std::size_t kNoSeat = static_cast<std::size_t>(-1);
  bool move_seat(std::size_t runner, int fd);

  std::vector<std::unique_ptr<ServiceRunner>> runners_;
  std::optional<DeliveryWindow> window_;
  std::size_t outstanding_ = 0;
  std::vector<ServiceRunner*> to_wake_;
  std::vector<ServiceRunner*> waking_;  // the connection thread's, taken from to_wake_
  std::size_t reads_since_wake_ = 0;    // buffered deliveries read since the last take_wakes()
  int epoll_fd_ = -1;
  std::size_t seat_ = kNoSeat;         // the runner that reads the socket when idle
  std::size_t seat_wanted_ = kNoSeat;  // the runner woken last: take_wakes() seats it
};

}  // namespace sbus
