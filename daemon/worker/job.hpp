// What passes between a worker's connection thread and its service threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "protocol/wire_codec.hpp"
#include "worker/dead_letter.hpp"
#include "worker/envelope.hpp"

namespace sbus {

// One delivery handed to a service.
struct Job {
  Envelope envelope;
  // event.params: checked at admission (check_params()), and handed to the
  // plugin as they are.
  Event event;
  // Messages only: what the error queue gets if it keeps failing.
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // When its caller (or sender) stops waiting: the service thread does not
  // start it later, and its Request carries it. nullopt: none.
  std::optional<std::chrono::system_clock::time_point> deadline;
  // What the job holds while it waits in its service's queue (QueueBudget).
  std::size_t bytes = 0;
};

// The result of a Job, for the connection thread to publish and ack.
struct Outcome {
  Envelope envelope;       // the Job's: a message has nothing to publish, only an ack
  std::size_t runner = 0;  // index of the service that ran it
  std::string body;        // the encoded reply; for a dead letter, the original body
  // A message whose retries are spent (DeadLetterPolicy): what the error
  // queue is told of it.
  std::optional<ErrorEntry> dead_letter;
  // Stopped before the message could be handled: leave it unacked.
  bool leave = false;
  // Handled, but what its handler sent could not be released (the broker
  // was lost, Outbox::release()): rejected with requeue, unanswered, so
  // that the broker delivers it again.
  bool requeue = false;
  // Finished after its runner was abandoned (ServiceRunner::abandon_call()):
  // never handed to the worker.
  bool abandoned = false;
  // Not run: its deadline had passed when its turn came (sbus.stats
  // `expired`). A call is answered deadline_exceeded, a message is acked.
  bool expired = false;
  // Answered with an error, or moved to the error queue (sbus.stats).
  bool failed = false;
  std::chrono::nanoseconds busy{0};                          // in on_call / on_message
  std::vector<std::pair<std::string, std::string>> headers;  // a dead letter's original ones
};

}  // namespace sbus
