// Outcomes travelling from service threads to the connection thread, with an
// eventfd that the connection thread polls. The eventfd is written only
// while the connection thread watches it (between watch() and unwatch(),
// around its poll()), and then once per burst: a connection thread that is
// awake takes what is queued on its next turn without any system call.
//
// An outcome may also be held (hold()): queued without a wake-up, because
// the service thread that held it will hand over the run it belongs to in a
// moment (RunnerHost::hold()). A timer bounds the wait: when the connection
// thread sleeps, the first held outcome arms timer_fd() to fire kHeldFor
// later, so a run whose next job never returns still leaves by then; any
// take() disarms it.
#pragma once

#include <chrono>
#include <mutex>
#include <vector>

#include "worker/job.hpp"

namespace sbus {

class CompletionQueue {
 public:
  CompletionQueue();
  ~CompletionQueue();
  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;

  // The longest a held outcome waits while the connection thread sleeps.
  static constexpr std::chrono::milliseconds kHeldFor{1};

  // Any thread.
  void push(Outcome outcome);
  // Any thread: queues without a wake-up; arms the timer when the
  // connection thread sleeps and the timer is not armed.
  void hold(Outcome outcome);
  // Any thread: takes the outcomes only (not the wake-up nor an owed read).
  void take_outcomes(std::vector<Outcome>* out);
  // Any thread: makes the connection thread's poll return, with or without
  // outcomes queued.
  void wake();
  // Any thread: the connection thread must read the broker socket until
  // nothing is left (a reader that was woken for it could not).
  void owe_read();
  // The connection thread: takes everything queued and clears the wake-up;
  // true when a read is owed (and clears that too).
  bool take(std::vector<Outcome>* out);
  // The connection thread, before it sleeps on fd(): false when outcomes
  // are already queued (take them instead of sleeping). After the sleep:
  // unwatch().
  bool watch();
  void unwatch();
  int fd() const { return fd_; }
  // Readable when held outcomes have waited kHeldFor: poll it beside fd().
  int timer_fd() const { return timer_fd_; }

 private:
  void wake_locked();
  void disarm_locked();

  int fd_;
  int timer_fd_;
  bool armed_ = false;  // timer_fd_ is set to fire
  std::mutex mutex_;
  std::vector<Outcome> items_;
  bool woken_ = false;     // the eventfd was written and not read yet
  bool watching_ = false;  // the connection thread sleeps on the eventfd
  bool read_owed_ = false;
};

}  // namespace sbus
