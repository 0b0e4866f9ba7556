// The worker's watch on its broker and on the route callers use (the ping
// watcher), and its record of the broker's connection.blocked.
//
// Every ping_interval a probe goes out without waiting: a message through
// the exchange to this node's queue, mandatory, then a passive declare of
// the node queue on the probe channel, answered by the broker's channel and
// queue processes (on_frame()). A broker that hangs or a link that silently
// drops packets leaves it unanswered past ping_timeout; then the connection
// is given up so that the reconnect logic runs (overdue()). Not waiting
// keeps rabbitmq-c out of a synchronous call, which closes the socket when
// it times out: during a resource alarm the broker reads nothing after a
// publish, and its connection.blocked must be read, not timed out on.
//
// The message checks the route callers use: a deleted exchange closes the
// probe channel (404) instead of answering the declare, a deleted binding
// returns the message; either way restore_route() puts them back. Routed,
// it reaches this worker, which acks it unread (is_own()).
//
// Owned by the BrokerSession, under its lock; each call is given the
// session's connection. Not thread-safe.
#pragma once

#include <amqp.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "amqp/amqp_connection.hpp"
#include "base/broker_uri.hpp"
#include "config/config.hpp"

namespace sbus {

class RouteProbe {
 public:
  using Clock = std::chrono::steady_clock;

  RouteProbe(const Config& config, const BrokerUri& uri);

  // A new connection: nothing in flight, the first probe one ping_interval
  // from now, the route taken as it is.
  void reset();

  // Whether a delivery is this worker's own message (send(),
  // prove_own_node()), which it acks unread.
  bool is_own(const amqp_basic_properties_t& props, std::string_view body) const;

  bool enabled() const;
  // No probe in flight and the next one due.
  bool due(Clock::time_point now) const;
  // When the loop must look again: the deadline of the probe in flight, or
  // the next probe.
  Clock::time_point next_wake() const;

  // Queues the probe's message and declare on `connection`; false when it
  // cannot be written (the caller gives the connection up). The caller
  // flushes.
  bool send(AmqpConnection& connection);
  // Queues a message to the node queue (through the default exchange, which
  // cannot be missing) from the probe channel with reply_to set to direct
  // reply-to: the broker writes this connection's own address into it,
  // whose node is the broker's own, alive by definition. When the worker
  // reads it, replies of authenticated callers connected to that node go
  // out directly from the first, without the quarantine (ReplyGuard). Its
  // body is a random token of this worker, so that nobody else's message
  // proves a node. False when it cannot be written.
  bool prove_own_node(AmqpConnection& connection);
  // True when the probe in flight is past its deadline: the broker or the
  // link is broken. While the broker says the connection is blocked, the
  // deadline moves on: it will answer once the alarm clears.
  bool overdue(const AmqpConnection& connection);

  // A method frame of the probe channel other than basic.return: the
  // answer to the probe, or the channel closed because the exchange is
  // gone. False when it is not the probe's to handle, or the connection
  // must be given up.
  bool on_frame(AmqpConnection& connection, const amqp_frame_t& frame);
  // The probe's message came back unroutable: the binding is gone.
  void route_returned() { route_lost_ = true; }
  bool route_lost() const { return route_lost_; }
  // Declares the exchange and binds the node queue to it again, on the
  // probe channel; false (the caller gives the connection up, so that the
  // next connect declares everything) if the broker refuses.
  bool restore_route(AmqpConnection& connection);

  // The broker's connection.blocked or unblocked, already recorded by
  // `connection`: logged, counted for sbus.stats.
  void note_blocking(const AmqpConnection& connection);
  std::uint64_t blocks() const { return blocks_; }
  Clock::duration blocked_for(Clock::time_point now) const;
  // The round trip of the last probe answered; zero before the first.
  Clock::duration last_rtt() const { return last_rtt_; }

 private:
  const Config& config_;
  const BrokerUri& uri_;
  // The body of the worker's own messages.
  const std::string token_;
  Clock::time_point next_probe_{};
  Clock::time_point sent_at_{};
  Clock::time_point deadline_{};  // of the probe in flight; none: {}
  bool channel_closed_ = false;
  bool route_lost_ = false;
  // connection.blocked: since when, how often, for how long in all.
  Clock::time_point blocked_since_{};
  std::uint64_t blocks_ = 0;
  Clock::duration blocked_total_{};
  Clock::duration last_rtt_{};
};

}  // namespace sbus
