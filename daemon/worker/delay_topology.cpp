#include "worker/delay_topology.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/log.hpp"
#include "protocol/deferral.hpp"

namespace sbus {
namespace {

// Table entries point into strings the caller keeps alive.
amqp_table_entry_t text_entry(const char* key, const std::string& value) {
  amqp_table_entry_t entry{amqp_cstring_bytes(key), {}};
  entry.value.kind = AMQP_FIELD_KIND_UTF8;
  entry.value.value.bytes = to_bytes(value);
  return entry;
}

amqp_table_t table_of(std::vector<amqp_table_entry_t>& entries) {
  return amqp_table_t{static_cast<int>(entries.size()), entries.data()};
}

// A refusal by the broker that closed only the channel (PRECONDITION_FAILED,
// NOT_FOUND, ACCESS_REFUSED): deferral is off, the worker serves on.
struct ChannelRefused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Declares on one channel; the first refusal closes it and throws
// ChannelRefused, anything else on the connection throws AmqpError.
class Declarer {
 public:
  Declarer(AmqpConnection& connection, amqp_channel_t channel) : connection_(connection), channel_(channel) {
    amqp_channel_open(connection_.get(), channel_);
    connection_.check_last("open channel for deferral");
  }

  void check(const std::string& operation) {
    const amqp_rpc_reply_t reply = amqp_get_rpc_reply(connection_.get());
    if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
      const auto* close = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
      const std::string text(static_cast<const char*>(close->reply_text.bytes), close->reply_text.len);
      amqp_channel_close_ok_t ok{};
      connection_.check_status(amqp_send_method(connection_.get(), channel_, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok),
                               "channel.close-ok");
      throw ChannelRefused(operation + ": " + text);
    }
    connection_.check(reply, operation);
  }

  void exchange(const std::string& name, const char* type, std::vector<amqp_table_entry_t> args) {
    amqp_exchange_declare(connection_.get(), channel_, to_bytes(name), amqp_cstring_bytes(type), 0, 1, 0, 0,
                          table_of(args));
    check("declare exchange " + name);
  }

  void queue(const std::string& name, std::vector<amqp_table_entry_t> args) {
    amqp_queue_declare(connection_.get(), channel_, to_bytes(name), 0, 1, 0, 0, table_of(args));
    check("declare queue " + name);
  }

  void bind_queue(const std::string& queue, const std::string& exchange, const std::string& key,
                  std::vector<amqp_table_entry_t> args) {
    amqp_queue_bind(connection_.get(), channel_, to_bytes(queue), to_bytes(exchange), to_bytes(key), table_of(args));
    check("bind queue " + queue + " to " + exchange);
  }

  void bind_exchange(const std::string& destination, const std::string& source, std::vector<amqp_table_entry_t> args) {
    amqp_exchange_bind(connection_.get(), channel_, to_bytes(destination), to_bytes(source), amqp_empty_bytes,
                       table_of(args));
    check("bind exchange " + destination + " to " + source);
  }

  void close() {
    amqp_channel_close(connection_.get(), channel_, AMQP_REPLY_SUCCESS);
    connection_.check_last("close channel for deferral");
  }

 private:
  AmqpConnection& connection_;
  amqp_channel_t channel_;
};

void declare_levels(Declarer& declare, const Config& config) {
  const std::string all = "all";
  const std::string one = "1";
  const std::string quorum = "quorum";
  const std::string at_least_once = "at-least-once";
  const std::string reject_publish = "reject-publish";
  // From the bottom up: each level's exchange names the one below as its
  // alternate exchange, and its queue dead-letters there.
  for (const DelayLevel& level : delay_levels(config.delay_exchange)) {
    declare.exchange(level.name, "headers", {text_entry("alternate-exchange", level.next)});
    std::vector<amqp_table_entry_t> args;
    amqp_table_entry_t ttl{amqp_cstring_bytes("x-message-ttl"), {}};
    ttl.value.kind = AMQP_FIELD_KIND_I64;
    ttl.value.value.i64 = level.ttl_ms;
    args.push_back(ttl);
    args.push_back(text_entry("x-dead-letter-exchange", level.next));
    if (config.queue_type == "quorum") {
      // Quorum queues dead-letter at least once (classic ones at most
      // once); RabbitMQ asks for reject-publish with it.
      args.push_back(text_entry("x-queue-type", quorum));
      args.push_back(text_entry("x-dead-letter-strategy", at_least_once));
      args.push_back(text_entry("x-overflow", reject_publish));
    }
    declare.queue(level.name, args);
    declare.bind_queue(level.name, level.name, "", {text_entry("x-match", all), text_entry(level.header.c_str(), one)});
  }
}

}  // namespace

void declare_delay_topology(AmqpConnection& connection, amqp_channel_t spare_channel, const Config& config) {
  const std::string out = delay_out_exchange(config.delay_exchange);
  const std::string nodes = delay_nodes_exchange(config.delay_exchange);
  const std::string all = "all";
  const std::string node_kind(target_kind_name(DeferTarget::Kind::kNode));
  Declarer declare(connection, spare_channel);
  try {
    // The node's binding first: levels that another sbusd declared with
    // other arguments (another queue_type) still deliver to it.
    declare.exchange(nodes, "direct", {});
    declare.bind_queue(config.node, nodes, config.node, {});
    declare.exchange(out, "headers", {});
    declare.bind_exchange(nodes, out, {text_entry("x-match", all), text_entry(kDelayTargetHeader.data(), node_kind)});
    if (!event_bindings(config).empty()) {
      // Deferred events: due, they go on to the events exchange with their
      // topic as the routing key, so the subscribers' bindings match it.
      const std::string topic_kind(target_kind_name(DeferTarget::Kind::kTopic));
      declare.exchange(config.events_exchange, "topic", {});
      declare.bind_exchange(config.events_exchange, out,
                            {text_entry("x-match", all), text_entry(kDelayTargetHeader.data(), topic_kind)});
    }
    declare_levels(declare, config);
  } catch (const ChannelRefused& e) {
    SBUS_LOG(kWarn) << "deferred delivery through this broker: " << e.what()
                    << "; what exists is used as it is (delay_exchange " << config.delay_exchange
                    << ", docs/reliability.md)";
    return;
  }
  declare.close();
}

}  // namespace sbus
