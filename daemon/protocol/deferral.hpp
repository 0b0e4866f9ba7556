// Deferred delivery on plain RabbitMQ: a message sent now that reaches its
// service no earlier than a time to come, from 10 ms to 497 days ahead,
// without a broker plugin. Pure: names, limits, parsing and the split of a
// delay into levels; the worker declares the topology
// (worker/delay_topology.hpp), the sender publishes into it
// (client/sender_defer.cpp). docs/reliability.md, "Deferred delivery", is
// the user's page of the same design.
//
// The design (the binary levels of NServiceBus and kombu, with a unit of
// 10 ms where they use one second):
//
//   - The delay is counted in units of kDelayUnit (10 ms), rounded up, so a
//     message is never early. Level k (0 to 31) is a durable queue whose
//     x-message-ttl is 2^k units: level 0 holds 10 ms, level 31 about 248
//     days, and the 32 levels together hold up to 2^32 - 1 units
//     (kMaxDelay, 497 days).
//   - A message visits only the levels of the bits set in its delay, from
//     the highest down: a 90 s delay (9000 units, 0b10001100101000) waits in
//     5 of the 32 queues. Each level has a headers exchange PREFIX.k: a
//     binding {sbus-delay-k: "1"} sends the message into the queue PREFIX.k;
//     anything else goes on to the exchange of the level below through the
//     exchange's alternate-exchange. The queue dead-letters (on expiry) to
//     the exchange of the level below too, the routing key kept. Below
//     level 0 is the exchange PREFIX.out.
//   - The message carries its bits as headers (sbus-delay-K: "1" for each
//     set bit K) and its destination as the routing key plus the header
//     sbus-delay-to. PREFIX.out (headers) sends "node" to PREFIX.nodes, a
//     direct exchange to which each sbusd binds its node queue by name.
//     Every other kind of destination (the events exchange, kTopic) is one
//     more binding of PREFIX.out: DeferTarget is the one place that names
//     destinations. For topics: sbusd binds the events exchange to
//     PREFIX.out on {sbus-delay-to: "topic"} (worker/delay_topology.cpp),
//     and the sender's publish passes DeferTarget{kTopic, TOPIC} to
//     Sender::Impl::publish_deferred; the routing key, the topic, is kept
//     through every hop, so the subscribers' own bindings match it.
//   - Why 10 ms and 32 levels: RabbitMQ times a queue's expiry in whole
//     milliseconds and each hop through a level costs it about a
//     millisecond, so a finer unit buys no accuracy and costs levels;
//     32 levels (32-bit delays) reach past a year, and a delay visits at
//     most 32 queues. One second (the anchors' unit) would make a
//     100 ms delay impossible.
//   - What RabbitMQ 3.10 does that the design relies on: a queue's messages
//     share one TTL, so they expire in order from the head; the sender never
//     sets a per-message expiration (it would make the message leave its
//     level early, and dead-lettering strips it); dead-lettering to an
//     exchange that does not exist drops the message silently, so every hop
//     goes to an exchange of sbus's own, durable, and the last one to a
//     queue bound by name. Everything is durable and messages persistent, so
//     a deferred message survives a broker restart and a restart of every
//     sbusd (nothing of sbusd is on the path).
#pragma once

#include "base/delay.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sbus {

inline constexpr std::string_view kDefaultDelayPrefix = "sbus.delay";
// sbus-delay-to: what kind of destination the last hop delivers to.
inline constexpr std::string_view kDelayTargetHeader = "sbus-delay-to";
// x-sbus-due: when the message is due, Unix time in ms (informative: the
// levels, not this header, hold the message back).
inline constexpr std::string_view kDueHeader = "x-sbus-due";

// Where a deferred message goes when it is due: a node's queue (routing key
// NODE), or later a topic of the events exchange.
struct DeferTarget {
  enum class Kind { kNode, kTopic };
  Kind kind = Kind::kNode;
  std::string key;  // the node, or the topic: the routing key throughout
};
std::string_view target_kind_name(DeferTarget::Kind kind);

// The names sbusd declares under `prefix` (config key delay_exchange).
std::string delay_level_name(std::string_view prefix, int level);  // exchange and queue PREFIX.K
std::string delay_out_exchange(std::string_view prefix);           // PREFIX.out
std::string delay_nodes_exchange(std::string_view prefix);         // PREFIX.nodes
// sbus-delay-K: the header that sends a message into level K.
std::string delay_level_header(int level);

// One level of the topology as sbusd declares it.
struct DelayLevel {
  int level = 0;
  std::string name;         // exchange and queue
  std::int64_t ttl_ms = 0;  // the queue's x-message-ttl
  std::string next;         // alternate exchange and dead-letter exchange
  std::string header;       // the binding's one header
};
std::vector<DelayLevel> delay_levels(std::string_view prefix);

// A delay split into levels.
struct DelayPlan {
  std::uint64_t units = 0;  // the delay in kDelayUnit, rounded up
  std::vector<int> levels;  // the bits set in `units`, highest first
  std::chrono::milliseconds delay() const { return units * kDelayUnit; }
};

// The plan for `delay`; nullopt with *error when it is not positive or is
// beyond kMaxDelay.
std::optional<DelayPlan> plan_delay(std::chrono::milliseconds delay, std::string* error);

// The headers a deferred message carries for `plan` and `target`.
std::vector<std::pair<std::string, std::string>> delay_headers(const DelayPlan& plan, const DeferTarget& target);
// The exchange a deferred message is published to: its highest level's.
std::string delay_entry_exchange(std::string_view prefix, const DelayPlan& plan);

}  // namespace sbus
