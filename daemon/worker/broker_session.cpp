#include "worker/broker_session.hpp"

#include <algorithm>
#include <deque>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "base/log.hpp"
#include "protocol/error_seal.hpp"
#include "worker/delay_topology.hpp"
#include "worker/event_queues.hpp"
#include "worker/node_queues.hpp"
#include "worker/reply_address.hpp"

namespace sbus {

// The error and hold queues are declared on this channel, closed after.
constexpr amqp_channel_t kSetupChannel = 3;

namespace {

// The quarantine connection carries single publishes, each checked at once:
// it needs no heartbeats.
ConnectOptions quarantine_options(const Config& config) {
  ConnectOptions options;
  options.heartbeat_seconds = 0;
  options.connection_name = "sbusd " + config.node + " quarantine";
  options.tls = config.tls;
  return options;
}

}  // namespace

BrokerSession::BrokerSession(const Config& config, const BrokerUri& uri)
    : config_(config), uri_(uri), probe_(config, uri) {
  init_amqp_pool(&spill_pool_, 4096);
}

BrokerSession::~BrokerSession() {
  empty_amqp_pool(&spill_pool_);
}

bool BrokerSession::open(std::size_t window) {
  closed_by_reply_ = false;
  try {
    ConnectOptions options;
    options.heartbeat_seconds = config_.heartbeat_seconds;
    options.connection_name = "sbusd " + config_.node;
    options.tls = config_.tls;
    AmqpConnection connection = AmqpConnection::open(uri_, options);
    declare(connection, window);
    connection_ = std::move(connection);
    broker_unreachable_ = false;
    return true;
  } catch (const BrokerUnreachable& e) {
    SBUS_LOG(kWarn) << e.what();
    broker_unreachable_ = true;
    return false;
  } catch (const AmqpError& e) {
    SBUS_LOG(kWarn) << e.what();
    broker_unreachable_ = false;
    return false;
  }
}

void BrokerSession::start() {
  connection_ok_ = true;
  acks_.clear();
  probe_.reset();
  ++generation_;
  // Its message proves the node once read (read_delivery()).
  if (!probe_.prove_own_node(connection_)) connection_ok_ = false;
  send_queued();
}

// What the worker needs of the broker on a new connection, as it needs it;
// throws AmqpError.
void BrokerSession::declare(AmqpConnection& connection, std::size_t window) {
  amqp_connection_state_t c = connection.get();
  const amqp_bytes_t exchange = to_bytes(config_.exchange);
  const amqp_bytes_t queue = to_bytes(config_.node);

  // Exactly as py-servicebus declares them (PROTOCOL.md), or the broker
  // refuses the redeclare with PRECONDITION_FAILED.
  amqp_exchange_declare(c, kChannel, exchange, amqp_cstring_bytes("direct"), 0, 0, 0, 0, amqp_empty_table);
  connection.check_last("declare exchange " + config_.exchange);
  // Classic: no arguments, as py-servicebus declares it (an existing queue
  // keeps its type: RabbitMQ refuses to redeclare it with another).
  amqp_table_entry_t type_entry{amqp_cstring_bytes("x-queue-type"), {}};
  type_entry.value.kind = AMQP_FIELD_KIND_UTF8;
  type_entry.value.value.bytes = amqp_cstring_bytes("quorum");
  const amqp_table_t queue_args = config_.queue_type == "quorum" ? amqp_table_t{1, &type_entry} : amqp_empty_table;
  amqp_queue_declare(c, kChannel, queue, 0, 1, 0, 0, queue_args);
  connection.check_last("declare queue " + config_.node);
  declare_error_queue(connection, kSetupChannel, config_);
  declare_hold_queue(connection, kSetupChannel, config_);
  declare_delay_topology(connection, kSetupChannel, config_);
  declare_event_queues(connection, kSetupChannel, config_);
  amqp_queue_bind(c, kChannel, queue, exchange, queue, amqp_empty_table);
  connection.check_last("bind queue " + config_.node);
  amqp_channel_open(c, kProbeChannel);
  connection.check_last("open probe channel");
  // Direct reply-to on the probe channel: a message published from it
  // carries an address of this broker's node (prove_own_node()).
  amqp_basic_consume(c, kProbeChannel, to_bytes(kDirectReplyPrefix), amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
  connection.check_last("consume " + std::string(kDirectReplyPrefix));

  amqp_basic_qos(c, kChannel, 0, static_cast<std::uint16_t>(window), 0);
  connection.check_last("basic.qos");
  amqp_basic_consume_ok_t* ok = amqp_basic_consume(c, kChannel, queue, amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  connection.check_last("consume from " + config_.node);
  consumer_tag_ = bytes_to_string(ok->consumer_tag);
  // RabbitMQ applies basic.qos to each consumer started after it: an event
  // queue's consumer takes at most `prefetch` deliveries, which its service
  // may always hold (its share of the window is prefetch + 1 while the
  // others are idle), so a burst of events waits in its queue rather than
  // bouncing through NODE.hold for hold_time.
  amqp_basic_qos(c, kChannel, 0, static_cast<std::uint16_t>(std::min(config_.prefetch, 65535)), 0);
  connection.check_last("basic.qos for the event queues");
  event_consumer_tags_ = consume_event_queues(connection, kChannel, config_);
}

// After a 541 close, the addresses replied to just before are suspects
// (ReplyGuard); their replies go through the quarantine connection.
void BrokerSession::suspect_recent_replies(int reply_code) {
  if (reply_code != AMQP_INTERNAL_ERROR) return;
  closed_by_reply_ = true;
  const std::size_t added = replies_.delivery_failed(Clock::now());
  SBUS_LOG(kWarn) << "the broker failed to deliver a reply (541): replies to the " << added
                  << " address(es) used in the last " << ReplyGuard::kWindow.count()
                  << " ms go through a quarantine connection until each is proven alive or dead";
}

// Publishes a reply that may make the broker close its connection (a
// suspect address, an unproven node, an unauthenticated caller: see
// ReplyGuard) on the quarantine connection and waits for the broker to have
// routed it: a synchronous method on the same channel is answered only
// after the publish was handled. The address and its node are then alive
// (cleared, proven) or dead (its replies are dropped from now on). Either
// way the call is done: the caller acks it. Unauthenticated replies are
// dropped instead while the connection has been reopened too often (a
// flood of forged addresses), and every one while the broker is blocked.
void BrokerSession::publish_quarantined(const std::string& reply_to, const std::string& correlation_id,
                                        std::string_view body, std::uint64_t address, ReplyGuard::Caller caller) {
  // A blocked broker would hold this publish and the check after it for the
  // whole RPC timeout, on the connection thread.
  const bool blocked = connection_.blocked();
  if (blocked || (!quarantine_ && caller == ReplyGuard::Caller::kUnauthenticated && !may_open_quarantine())) {
    ++replies_dropped_;
    SBUS_LOG(kDebug) << "reply to " << reply_to << " dropped: "
                     << (blocked ? "the broker is blocked" : "the quarantine connection was reopened too often");
    return;
  }
  try {
    if (!quarantine_) {
      quarantine_opens_[next_quarantine_open_++ % quarantine_opens_.size()] = Clock::now();
      quarantine_ = AmqpConnection::open(uri_, quarantine_options(config_));
    }
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_CORRELATION_ID_FLAG;
    props.correlation_id = to_bytes(correlation_id);
    ++replies_quarantined_;
    quarantine_.check_status(amqp_basic_publish(quarantine_.get(), kChannel, amqp_empty_bytes, to_bytes(reply_to), 0, 0,
                                                &props, to_bytes(body)),
                             "publish reply");
    // Any synchronous method: answered only once the publish was handled.
    // basic.qos depends on nothing that may be missing (an exchange that
    // was deleted would make the address look dead).
    amqp_basic_qos(quarantine_.get(), kChannel, 0, 0, 0);
    const amqp_rpc_reply_t reply = amqp_get_rpc_reply(quarantine_.get());
    if (reply.reply_type == AMQP_RESPONSE_NORMAL) {
      if (replies_.route(address) == ReplyGuard::Route::kQuarantine) {
        SBUS_LOG(kInfo) << "reply address " << log_value(reply_to) << " is alive: its replies go the usual way again";
      }
      replies_.alive(address, reply_to);
      return;
    }
    // The reply's method lives in the connection's pool: read it first.
    const std::string why = describe_reply(reply);
    quarantine_.abandon();
    if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION) {
      replies_.dead(address);
      // A caller without a valid token may send these at will: not worth a
      // warning each.
      if (caller == ReplyGuard::Caller::kAuthenticated) {
        SBUS_LOG(kWarn) << "reply address " << log_value(reply_to) << " is dead (" << why
                        << "); replies to it are dropped";
      } else {
        SBUS_LOG(kDebug) << "reply address " << log_value(reply_to) << " is dead (" << why
                         << "); replies to it are dropped";
      }
      return;
    }
    SBUS_LOG(kWarn) << "quarantine connection to " << uri_.redacted() << " failed: " << why;
  } catch (const AmqpError& e) {
    SBUS_LOG(kWarn) << "quarantine connection: " << e.what() << "; a reply to " << log_value(reply_to) << " is dropped";
    quarantine_.abandon();
  }
}

// Whether the quarantine connection may be opened once more now: at most
// as often as quarantine_opens_ has slots in a second.
bool BrokerSession::may_open_quarantine() const {
  const Clock::time_point oldest = quarantine_opens_[next_quarantine_open_ % quarantine_opens_.size()];
  return oldest == Clock::time_point{} || Clock::now() - oldest >= std::chrono::seconds(1);
}

bool BrokerSession::publish_reply(const std::string& reply_to, const std::string& correlation_id, std::string_view body,
                                  ReplyGuard::Caller caller) {
  const std::uint64_t address = ReplyGuard::address(reply_to);
  switch (replies_.route_reply(reply_to, address, caller)) {
    case ReplyGuard::Route::kDrop:
      SBUS_LOG(kDebug) << "reply to dead address " << log_value(reply_to) << " dropped";
      ++replies_dropped_;
      return true;
    case ReplyGuard::Route::kQuarantine:
      publish_quarantined(reply_to, correlation_id, body, address, caller);
      return true;
    case ReplyGuard::Route::kDirect: break;
  }
  amqp_basic_properties_t props{};
  if (!correlation_id.empty()) {
    props._flags = AMQP_BASIC_CORRELATION_ID_FLAG;
    props.correlation_id = to_bytes(correlation_id);
  }
  int status = connection_.queue_publish(kChannel, amqp_empty_bytes, to_bytes(reply_to), props, to_bytes(body));
  if (status != AMQP_STATUS_OK) {
    SBUS_LOG(kWarn) << "publish reply to " << log_value(reply_to) << " failed: " << amqp_error_string2(status);
    connection_ok_ = false;
    return false;
  }
  replies_.sent(address, Clock::now());
  return true;
}

bool BrokerSession::publish_dead_letter(std::string_view body, const std::string& service, const std::string& error,
                                        int attempts, const Headers& headers, const Headers& own_headers,
                                        const std::string& queue, std::string_view message_id) {
  // The table points into `texts`, which must outlive the publish.
  std::deque<std::string> texts;
  std::vector<amqp_table_entry_t> entries;
  auto add = [&entries, &texts](std::string key, std::string value) {
    amqp_table_entry_t entry{to_bytes(texts.emplace_back(std::move(key))), {}};
    entry.value.kind = AMQP_FIELD_KIND_UTF8;
    entry.value.value.bytes = to_bytes(texts.emplace_back(std::move(value)));
    entries.push_back(entry);
  };
  for (const auto& [key, value] : headers) {
    if (key.rfind("x-sbus-", 0) != 0) add(key, value);
  }
  bool seal = queue.empty();
  for (const auto& [key, value] : own_headers) {
    add(key, value);
    if (key == "x-sbus-token") seal = false;
  }
  if (seal) add("x-sbus-seal", error_seal(config_.secret, config_.node, body));
  if (!error.empty()) add("x-sbus-error", error);
  add("x-sbus-service", service);
  add("x-sbus-node", config_.node);
  add("x-sbus-attempts", std::to_string(attempts));
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  props.headers = amqp_table_t{static_cast<int>(entries.size()), entries.data()};
  if (!message_id.empty()) {
    props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
    props.message_id = to_bytes(message_id);
  }
  const std::string& to = queue.empty() ? config_.error_queue : queue;
  int status = connection_.queue_publish(kChannel, amqp_empty_bytes, to_bytes(to), props, to_bytes(body));
  if (status != AMQP_STATUS_OK) {
    SBUS_LOG(kWarn) << "publish to " << to << " failed: " << amqp_error_string2(status);
    connection_ok_ = false;
    return false;
  }
  return true;
}

void BrokerSession::settle(std::uint64_t tag, bool ack) {
  if (ack) {
    acks_.ack(tag);
    return;
  }
  reject(tag, false);
}

void BrokerSession::requeue(std::uint64_t tag) {
  reject(tag, true);
}

void BrokerSession::reject(std::uint64_t tag, bool requeue) {
  if (!acks_.reject(tag)) return;
  amqp_basic_reject_t reject{tag, requeue ? amqp_boolean_t{1} : amqp_boolean_t{0}};
  int status = connection_.queue_method(kChannel, AMQP_BASIC_REJECT_METHOD, &reject);
  if (status != AMQP_STATUS_OK) {
    SBUS_LOG(kWarn) << "reject of delivery " << tag << " failed: " << amqp_error_string2(status);
    connection_ok_ = false;
  }
}

void BrokerSession::flush_acks() {
  if (!connection_ok_) return;
  for (const AckTracker::Ack& ack : acks_.take_due()) {
    amqp_basic_ack_t method{ack.tag, ack.multiple ? amqp_boolean_t{1} : amqp_boolean_t{0}};
    int status = connection_.queue_method(kChannel, AMQP_BASIC_ACK_METHOD, &method);
    if (status != AMQP_STATUS_OK) {
      SBUS_LOG(kWarn) << "ack of delivery " << ack.tag << " failed: " << amqp_error_string2(status);
      connection_ok_ = false;
      return;
    }
  }
  send_queued();
}

bool BrokerSession::send_queued() {
  if (!connection_ok_) return false;
  int status = connection_.flush();
  if (status != AMQP_STATUS_OK) {
    SBUS_LOG(kWarn) << "write to " << uri_.redacted() << " failed: " << amqp_error_string2(status);
    connection_ok_ = false;
  }
  return connection_ok_;
}

void BrokerSession::stop_consuming() {
  stopping_ = true;
  if (connection_ok_ && !consumer_tag_.empty()) {
    amqp_basic_cancel(connection_.get(), kChannel, to_bytes(consumer_tag_));
    if (amqp_get_rpc_reply(connection_.get()).reply_type != AMQP_RESPONSE_NORMAL) {
      connection_ok_ = false;
    }
  }
  for (const std::string& tag : event_consumer_tags_) {
    if (!connection_ok_) break;
    amqp_basic_cancel(connection_.get(), kChannel, to_bytes(tag));
    if (amqp_get_rpc_reply(connection_.get()).reply_type != AMQP_RESPONSE_NORMAL) connection_ok_ = false;
  }
}

void BrokerSession::abandon() {
  connection_ok_ = false;
  connection_.abandon();
  quarantine_.abandon();
}

void BrokerSession::close() {
  connection_.close();
  quarantine_.close();
}

bool BrokerSession::probe_overdue() {
  if (!probe_.overdue(connection_)) return false;
  connection_ok_ = false;
  return true;
}

bool BrokerSession::probe_due(Clock::time_point now) const {
  return probe_.due(now);
}

bool BrokerSession::probe() {
  if (!probe_.send(connection_)) {
    connection_ok_ = false;
    return false;
  }
  return send_queued();
}

std::optional<BrokerSession::Clock::time_point> BrokerSession::probe_wake() const {
  if (!probe_.enabled()) return std::nullopt;
  return probe_.next_wake();
}

bool BrokerSession::restore_route() {
  if (!send_queued()) return false;
  if (!probe_.restore_route(connection_)) connection_ok_ = false;
  return connection_ok_;
}

bool BrokerSession::direct_route(const std::string& reply_to) const {
  return replies_.route_reply(reply_to, ReplyGuard::address(reply_to), ReplyGuard::Caller::kAuthenticated) ==
         ReplyGuard::Route::kDirect;
}

bool BrokerSession::needs_turn() {
  amqp_connection_state_t c = connection_.get();
  return !connection_ok_ || amqp_frames_enqueued(c) || amqp_data_in_buffer(c);
}

SessionStats BrokerSession::stats() const {
  SessionStats stats;
  stats.blocked = connection_.blocked();
  if (stats.blocked) stats.blocked_reason = connection_.blocked_reason();
  stats.blocks = probe_.blocks();
  stats.blocked_for = probe_.blocked_for(Clock::now());
  stats.replies_dropped = replies_dropped_;
  stats.replies_quarantined = replies_quarantined_;
  stats.ping_rtt = probe_.last_rtt();
  return stats;
}

}  // namespace sbus
