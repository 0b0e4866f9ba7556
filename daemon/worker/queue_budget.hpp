// What one service may hold waiting for its thread: at most `queue_len` jobs
// and `queue_bytes` bytes of them (their body, params text and parsed params).
//
// The worker admits a delivery to a service only while the budget has room;
// past it a call is answered `busy` and a message goes to the hold queue
// (docs/reliability.md), so a stuck service never takes the prefetch window
// or the memory that the node's other services need.
//
// A plain value: the ServiceRunner keeps one under its lock. Not thread-safe.
#pragma once

#include <cstddef>

namespace sbus {

class QueueBudget {
 public:
  QueueBudget(std::size_t max_jobs, std::size_t max_bytes) : max_jobs_(max_jobs), max_bytes_(max_bytes) {}

  // Takes room for a job of `bytes`; false (and nothing taken) when the
  // queue holds max_jobs already, or when the bytes would pass max_bytes.
  // An empty queue takes a job of any size: a body up to max_message_bytes
  // is always served once the service is free, whatever queue_bytes says.
  bool take(std::size_t bytes);
  // Gives back the room of a job that left the queue (started or dropped).
  void give_back(std::size_t bytes);
  void clear() { jobs_ = 0, bytes_ = 0; }

  std::size_t jobs() const { return jobs_; }
  std::size_t bytes() const { return bytes_; }

 private:
  std::size_t max_jobs_;
  std::size_t max_bytes_;
  std::size_t jobs_ = 0;
  std::size_t bytes_ = 0;
};

}  // namespace sbus
