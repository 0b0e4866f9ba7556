// Dead letters: every decision of the worker to move a delivery to the
// error queue, and what the entry says.
//
// A message can fail in two places: its service throws (the service
// thread, after each attempt: after_attempt(), then before_retry()), or it
// crashes workers (Admission, when the broker delivers it again:
// after_crashes()). A delivery can also be kept without being run: its
// service cannot run now (service_down()) or it is refused (refused()).
// Each returns a MessageFate or an ErrorEntry; the worker publishes an entry
// in one place (Worker::dead_letter(), through
// BrokerSession::publish_dead_letter()). No I/O, no clock of its own: any
// thread may use it.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "base/backoff.hpp"
#include "worker/delivery.hpp"

namespace sbus {

// What the error queue is told of a delivery: the x-sbus-* headers.
struct ErrorEntry {
  std::string service;  // x-sbus-service: "category.service", or empty when unknown
  std::string reason;   // x-sbus-error
  int attempts = 0;     // x-sbus-attempts: failed runs, or crashes
  // x-sbus-refused, x-sbus-token, x-sbus-body, x-sbus-reply-to: set for a
  // refused delivery only.
  Headers own;
};

// What becomes of a message that failed.
struct MessageFate {
  enum class Verdict {
    kRetry,       // run it (again), after `retry_in`
    kDeadLetter,  // into the error queue with `entry`
    kDrop,        // its deadline passed: acked, neither run again nor kept
  };
  Verdict verdict = Verdict::kRetry;
  std::chrono::milliseconds retry_in{0};
  ErrorEntry entry;
};

class DeadLetterPolicy {
 public:
  using WallClock = std::chrono::system_clock;

  // `max_retries`: how many times a message that fails is run again (the
  // config's max_retries).
  explicit DeadLetterPolicy(int max_retries);

  // Attempt `attempt` (from 1) of a message to `service` threw `error`:
  // retried with back-off (100 ms, doubling, at most 5 s apart) up to
  // max_retries times, then dead-lettered with the error.
  MessageFate after_attempt(int attempt, const std::string& service, const std::string& error) const;
  // A retry is due at `now`: a message whose deadline has passed is
  // dropped, else retried.
  MessageFate before_retry(std::optional<WallClock::time_point> deadline, WallClock::time_point now) const;
  // A message redelivered after it crashed workers `crashes` times: run
  // again up to max_retries crashes, then dead-lettered.
  MessageFate after_crashes(int crashes, const std::string& service) const;
  // A message to a service that cannot run it (not started, switched off):
  // dead-lettered at once, with `reason`, for `sbus errors requeue` once it
  // runs again.
  static MessageFate service_down(const std::string& service, std::string reason);
  // A delivery refused with `code` (errors.md), either kind: kept with the
  // code and the reason, marked as refused. `service` may be empty.
  struct Refusal {
    std::string code;
    std::string message;
    std::string service;
    bool token_refused = false;  // `sbus errors requeue` must not sign it anew
    bool body_dropped = false;   // over max_message_bytes: the body was not read
    std::string reply_to;        // a call's: where its error reply went
  };
  static ErrorEntry refused(const Refusal& refusal);

 private:
  int max_retries_;
  Backoff retry_;
};

}  // namespace sbus
