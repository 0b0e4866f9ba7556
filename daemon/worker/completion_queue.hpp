// Outcomes travelling from service threads to the connection thread, with an
// eventfd that the connection thread polls. The eventfd is written only
// while the connection thread watches it (between watch() and unwatch(),
// around its poll()), and then once per burst: a connection thread that is
// awake takes what is queued on its next turn without any system call.
#pragma once

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

  // Any thread.
  void push(Outcome outcome);
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

 private:
  void wake_locked();

  int fd_;
  std::mutex mutex_;
  std::vector<Outcome> items_;
  bool woken_ = false;     // the eventfd was written and not read yet
  bool watching_ = false;  // the connection thread sleeps on the eventfd
  bool read_owed_ = false;
};

}  // namespace sbus
