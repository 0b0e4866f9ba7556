// The queues a worker declares beside its node queue: the bounded error
// queue and the hold queue. Called on the connection thread by
// Worker::connect(), before it consumes; both throw AmqpError as
// AmqpConnection::check_last() does.
#pragma once

#include <string>
#include <vector>

#include "amqp/amqp_connection.hpp"
#include "config/config.hpp"

namespace sbus {

// Declares durable `queue` with `args` on `channel` (opened here, closed
// after). True when declared; false when the queue exists with other
// arguments (PRECONDITION_FAILED), after which it was declared passively so
// that it exists for sure. Throws for anything else. The entries of `args`
// point into strings the caller keeps alive.
bool declare_durable_queue(AmqpConnection& connection, amqp_channel_t channel, const std::string& queue,
                           std::vector<amqp_table_entry_t>& args);

// Adds x-queue-type: quorum to `args` when the config's queue_type says so.
void add_queue_type(const Config& config, std::vector<amqp_table_entry_t>* args);

// NODE.hold: where a message waits while its service is over queue_len or
// queue_bytes. Its x-message-ttl (hold_time) dead-letters each message back
// to the node queue through the default exchange.
std::string hold_queue_name(const Config& config);

// Declares the error queue with x-max-length, x-max-length-bytes and
// x-overflow drop-head, so that refused messages cannot fill the broker. An
// existing queue declared without these (by an older sbusd) makes RabbitMQ
// refuse the declare with PRECONDITION_FAILED: the queue is then used as it
// is and a warning says how to bound it by a policy. Uses `spare_channel`,
// which it leaves closed.
void declare_error_queue(AmqpConnection& connection, amqp_channel_t spare_channel, const Config& config);

// Declares the hold queue. Its arguments are this sbusd's own and never
// changed by hand; a hold_time differing from an existing queue's TTL makes
// the declare fail the same way: the old queue (empty, or its messages
// first back on the node queue) is then deleted and declared anew.
void declare_hold_queue(AmqpConnection& connection, amqp_channel_t spare_channel, const Config& config);

}  // namespace sbus
