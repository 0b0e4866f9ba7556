// Outcomes travelling from service threads to the connection thread, with an
// eventfd that the connection thread polls. The eventfd is written only when
// the queue goes from empty to non-empty, so a burst costs one wake-up.
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
  // The connection thread: takes everything queued and clears the wake-up.
  void take(std::vector<Outcome>* out);
  int fd() const { return fd_; }

 private:
  int fd_;
  std::mutex mutex_;
  std::vector<Outcome> items_;
  bool woken_ = false;  // the eventfd was written and not read yet
};

}  // namespace sbus
