#include "worker/route_probe.hpp"

#include <random>

#include "base/log.hpp"
#include "worker/reply_address.hpp"

namespace sbus {
namespace {

using std::chrono::milliseconds;

// The `type` of the worker's own messages to its queue.
constexpr std::string_view kRouteProbeType = "sbus.route-probe";

std::string random_token() {
  std::random_device random;
  std::string token;
  for (int i = 0; i < 4; ++i) token += std::to_string(random());
  return token;
}

}  // namespace

RouteProbe::RouteProbe(const Config& config, const BrokerUri& uri)
    : config_(config), uri_(uri), token_(random_token()) {}

void RouteProbe::reset() {
  next_probe_ = Clock::now() + milliseconds(config_.ping_interval_ms);
  deadline_ = {};
  channel_closed_ = false;
  route_lost_ = false;
}

bool RouteProbe::is_own(const amqp_basic_properties_t& props, std::string_view body) const {
  return (props._flags & AMQP_BASIC_TYPE_FLAG) &&
         std::string_view(static_cast<const char*>(props.type.bytes), props.type.len) == kRouteProbeType &&
         body == token_;
}

bool RouteProbe::enabled() const {
  return config_.ping_interval_ms > 0;
}

bool RouteProbe::due(Clock::time_point now) const {
  return deadline_ == Clock::time_point{} && now >= next_probe_;
}

RouteProbe::Clock::time_point RouteProbe::next_wake() const {
  return deadline_ != Clock::time_point{} ? deadline_ : next_probe_;
}

bool RouteProbe::send(AmqpConnection& connection) {
  next_probe_ = Clock::now() + milliseconds(config_.ping_interval_ms);
  // The broker said it holds this connection's publishes: it is not hung.
  if (connection.blocked()) return true;
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_EXPIRATION_FLAG;
  props.type = to_bytes(kRouteProbeType);
  props.expiration = amqp_cstring_bytes("0");  // never waits in the queue behind calls
  amqp_queue_declare_t declare{};
  declare.queue = to_bytes(config_.node);
  declare.passive = 1;
  if (connection.queue_publish(kProbeChannel, to_bytes(config_.exchange), to_bytes(config_.node), props,
                               to_bytes(token_), true) != AMQP_STATUS_OK ||
      connection.queue_method(kProbeChannel, AMQP_QUEUE_DECLARE_METHOD, &declare) != AMQP_STATUS_OK) {
    SBUS_LOG(kWarn) << "ping: cannot write to " << uri_.redacted() << "; reconnecting";
    return false;
  }
  sent_at_ = Clock::now();
  deadline_ = sent_at_ + milliseconds(config_.ping_timeout_ms);
  return true;
}

bool RouteProbe::prove_own_node(AmqpConnection& connection) {
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_REPLY_TO_FLAG;
  props.type = to_bytes(kRouteProbeType);
  props.reply_to = to_bytes(kDirectReplyPrefix);
  return connection.queue_publish(kProbeChannel, amqp_empty_bytes, to_bytes(config_.node), props, to_bytes(token_)) ==
         AMQP_STATUS_OK;
}

bool RouteProbe::overdue(const AmqpConnection& connection) {
  if (deadline_ == Clock::time_point{} || Clock::now() < deadline_) return false;
  if (connection.blocked()) {
    deadline_ = Clock::now() + milliseconds(config_.ping_timeout_ms);
    return false;
  }
  SBUS_LOG(kWarn) << "ping: no answer from " << uri_.redacted() << " within " << config_.ping_timeout_ms
                  << " ms; reconnecting";
  return true;
}

bool RouteProbe::on_frame(AmqpConnection& connection, const amqp_frame_t& frame) {
  switch (frame.payload.method.id) {
    case AMQP_QUEUE_DECLARE_OK_METHOD:
      last_rtt_ = Clock::now() - sent_at_;
      SBUS_LOG(kDebug) << "ping: broker answered in "
                       << std::chrono::duration_cast<std::chrono::microseconds>(last_rtt_).count() << " us";
      deadline_ = {};
      return true;
    case AMQP_CHANNEL_CLOSE_METHOD: {
      auto* m = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
      if (m->reply_code != AMQP_NOT_FOUND) break;
      SBUS_LOG(kWarn) << "ping: the broker closed the probe channel: " << bytes_to_string(m->reply_text)
                      << "; declaring exchange " << config_.exchange << " and binding queue " << config_.node
                      << " again";
      amqp_channel_close_ok_t ok{};
      if (amqp_send_method(connection.get(), kProbeChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK) {
        return false;
      }
      deadline_ = {};
      channel_closed_ = true;
      route_lost_ = true;
      return true;
    }
    default: return true;
  }
  return false;
}

bool RouteProbe::restore_route(AmqpConnection& connection) {
  route_lost_ = false;
  amqp_connection_state_t c = connection.get();
  if (channel_closed_) {
    amqp_channel_open(c, kProbeChannel);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
      SBUS_LOG(kWarn) << "reopening the probe channel failed; reconnecting";
      return false;
    }
    channel_closed_ = false;
  }
  amqp_exchange_declare(c, kProbeChannel, to_bytes(config_.exchange), amqp_cstring_bytes("direct"), 0, 0, 0, 0,
                        amqp_empty_table);
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(c);
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) {
    amqp_queue_bind(c, kProbeChannel, to_bytes(config_.node), to_bytes(config_.exchange), to_bytes(config_.node),
                    amqp_empty_table);
    reply = amqp_get_rpc_reply(c);
  }
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
    SBUS_LOG(kWarn) << "declaring exchange " << config_.exchange << " and binding queue " << config_.node
                    << " again failed: " << describe_reply(reply) << "; reconnecting";
    return false;
  }
  SBUS_LOG(kWarn) << "exchange " << config_.exchange << " and the binding of queue " << config_.node
                  << " are back: callers reach this node again";
  return true;
}

// While blocked, replies and acks wait in the socket, the probe is skipped
// and flush() waits for the socket without the write_stall limit.
void RouteProbe::note_blocking(const AmqpConnection& connection) {
  const auto now = Clock::now();
  if (connection.blocked()) {
    if (blocked_since_ != Clock::time_point{}) return;
    blocked_since_ = now;
    ++blocks_;
    SBUS_LOG(kWarn) << "broker " << uri_.redacted() << " blocked this connection: " << connection.blocked_reason()
                    << "; replies and acks wait until it unblocks";
    return;
  }
  if (blocked_since_ == Clock::time_point{}) return;
  blocked_total_ += now - blocked_since_;
  SBUS_LOG(kWarn) << "broker " << uri_.redacted() << " unblocked this connection after "
                  << std::chrono::duration_cast<milliseconds>(now - blocked_since_).count() << " ms";
  blocked_since_ = {};
  // A probe held by the block gets its whole timeout from now.
  if (deadline_ != Clock::time_point{}) deadline_ = now + milliseconds(config_.ping_timeout_ms);
}

RouteProbe::Clock::duration RouteProbe::blocked_for(Clock::time_point now) const {
  return blocked_total_ + (blocked_since_ == Clock::time_point{} ? Clock::duration{} : now - blocked_since_);
}

}  // namespace sbus
