// The events side of a worker's topology (docs/protocol.md, "Events"): the
// events exchange, the queue of each event service (this node's own, or its
// group's), their bindings, and the consumers. Called on the connection
// thread by BrokerSession::declare() on each new connection, before it
// consumes the node queue; every function throws AmqpError as
// AmqpConnection::check_last() does.
#pragma once

#include <amqp.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/amqp_connection.hpp"
#include "config/config.hpp"

namespace sbus {

// The consumer tag of an event service's consumer: the prefix, then
// CATEGORY.SERVICE.
inline constexpr std::string_view kEventConsumerPrefix = "sbus-event:";

// Declares the events exchange (durable, topic) and each event service's
// durable queue (of queue_type), binds each to its topics, and removes the
// bindings config.retired_bindings names (a reload took those topics
// away). Nothing when the config has no event service and retires nothing:
// an sbusd without events needs no permission on the events exchange. Uses
// `spare_channel`, which it leaves closed.
void declare_event_queues(AmqpConnection& connection, amqp_channel_t spare_channel, const Config& config);

// Consumes each event service's queue on `channel` (already open, its
// basic.qos set), tagged kEventConsumerPrefix + CATEGORY.SERVICE. Returns
// the consumer tags.
std::vector<std::string> consume_event_queues(AmqpConnection& connection, amqp_channel_t channel, const Config& config);

// The CATEGORY.SERVICE of a consumer tag of consume_event_queues(); nullopt
// for another consumer (the node queue's).
std::optional<std::string> event_service_of(std::string_view consumer_tag);

}  // namespace sbus
