// The floor's client: raw rabbitmq-c, one connection, the same request path
// as sbus::Sender (publish to the py-servicebus exchange with the queue's
// name as routing key, replies through RabbitMQ's direct reply-to), and no
// parsing of the reply beyond its correlation id.
//
// Owned by one thread. Failures throw std::runtime_error.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "raw_amqp.hpp"

namespace bench {

class FloorClient {
 public:
  // `body` is what every request carries (a captured sbus call body, so the
  // floor moves as many bytes as sbus does); `tls`: over mutual TLS to the
  // broker's TLS port.
  FloorClient(int port, std::string queue, std::string body, const TlsFiles& tls = {});

  // Publishes one call without waiting.
  void issue();
  // The latency in ns of the next reply, or nullopt after `timeout`.
  std::optional<std::uint64_t> complete(std::chrono::milliseconds timeout);
  std::size_t in_flight() const { return in_flight_; }
  // One call, waited for: its latency in ns.
  std::uint64_t roundtrip(std::chrono::milliseconds timeout);

  // Publishes `body` persistent and mandatory with publisher confirms, and
  // waits for the broker's ack (what sbus::Sender::send does).
  void send_confirmed();

 private:
  using Clock = std::chrono::steady_clock;
  // Calls in flight stay far below this: their start times live in a ring.
  static constexpr std::size_t kRing = 4096;

  RawConnection connection_;
  std::string queue_;
  std::string body_;
  std::uint64_t next_id_ = 0;
  std::size_t in_flight_ = 0;
  std::vector<Clock::time_point> started_;
  bool confirming_ = false;
  std::uint64_t confirm_tag_ = 0;
  char id_text_[24];
};

}  // namespace bench
