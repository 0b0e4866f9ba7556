// Outcomes travelling from service threads to the connection thread, with an
// eventfd that the connection thread polls. The eventfd is written only when
// the queue goes from empty to non-empty, so a burst costs one wake-up.
// Also OutcomeSink, through which a service thread hands over each outcome.
#pragma once

#include <mutex>
#include <vector>

#include "worker/job.hpp"

namespace sbus {

// Where a service thread hands each outcome (the worker: it publishes the
// reply itself when it can, else queues it in a CompletionQueue).
class OutcomeSink {
 public:
  virtual ~OutcomeSink() = default;
  virtual void complete(Outcome outcome) = 0;
};

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
  // The connection thread: takes everything queued and clears the wake-up.
  void take(std::vector<Outcome>* out);
  int fd() const { return fd_; }

 private:
  void wake_locked();

  int fd_;
  std::mutex mutex_;
  std::vector<Outcome> items_;
  bool woken_ = false;  // the eventfd was written and not read yet
};

}  // namespace sbus
