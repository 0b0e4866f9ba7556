// The exchanges and queues of deferred delivery (protocol/deferral.hpp), as
// a worker declares them on its broker: the 32 levels, PREFIX.out,
// PREFIX.nodes, and the binding of its node queue to PREFIX.nodes. Senders
// only publish into them, so a sender needs no configure permission.
//
// Called on the connection thread by BrokerSession::declare(), after the
// node queue exists, on a spare channel it leaves closed. Every sbusd of
// every node declares the same levels (idempotent). The node's binding
// comes first; a level that exists with other arguments (declared by hand,
// or by an sbusd with another queue_type) makes the broker refuse the
// declare: what exists is then used as it is, with a warning, and the
// worker serves on. Throws AmqpError only when the connection itself fails.
#pragma once

#include "amqp/amqp_connection.hpp"
#include "config/config.hpp"

namespace sbus {

void declare_delay_topology(AmqpConnection& connection, amqp_channel_t spare_channel, const Config& config);

}  // namespace sbus
