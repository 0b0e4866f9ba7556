#include "worker/event_queues.hpp"

#include "base/log.hpp"
#include "worker/node_queues.hpp"

namespace sbus {
namespace {

void bind(AmqpConnection& connection, amqp_channel_t channel, const Config& config, const EventBinding& binding) {
  amqp_queue_bind(connection.get(), channel, to_bytes(binding.queue), to_bytes(config.events_exchange),
                  to_bytes(binding.pattern), amqp_empty_table);
  connection.check_last("bind queue " + binding.queue + " to " + config.events_exchange + " with " + binding.pattern);
}

// A retired binding whose queue is gone (deleted by hand) closes the
// channel with NOT_FOUND: nothing is left to remove, and the channel is
// opened again for the next one.
void unbind(AmqpConnection& connection, amqp_channel_t channel, const Config& config, const EventBinding& binding) {
  amqp_connection_state_t c = connection.get();
  amqp_queue_unbind(c, channel, to_bytes(binding.queue), to_bytes(config.events_exchange), to_bytes(binding.pattern),
                    amqp_empty_table);
  const amqp_rpc_reply_t reply = amqp_get_rpc_reply(c);
  const bool gone = reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
                    static_cast<amqp_channel_close_t*>(reply.reply.decoded)->reply_code == AMQP_NOT_FOUND;
  if (!gone) {
    connection.check(reply, "unbind queue " + binding.queue + " from " + binding.pattern);
    SBUS_LOG(kInfo) << "queue " << binding.queue << " no longer subscribes to " << binding.pattern;
    return;
  }
  amqp_channel_close_ok_t ok{};
  connection.check_status(amqp_send_method(c, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok), "channel.close-ok");
  amqp_channel_open(c, channel);
  connection.check_last("open channel for the event bindings");
}

}  // namespace

void declare_event_queues(AmqpConnection& connection, amqp_channel_t spare_channel, const Config& config) {
  const std::vector<EventBinding> bindings = event_bindings(config);
  if (bindings.empty() && config.retired_bindings.empty()) return;
  amqp_connection_state_t c = connection.get();
  amqp_channel_open(c, spare_channel);
  connection.check_last("open channel for the events exchange");
  amqp_exchange_declare(c, spare_channel, to_bytes(config.events_exchange), amqp_cstring_bytes("topic"), 0, 1, 0, 0,
                        amqp_empty_table);
  connection.check_last("declare exchange " + config.events_exchange);
  amqp_channel_close(c, spare_channel, AMQP_REPLY_SUCCESS);
  connection.check_last("close channel of the events exchange");

  std::string declared;
  for (const EventBinding& binding : bindings) {
    if (binding.queue == declared) continue;
    std::vector<amqp_table_entry_t> args;
    add_queue_type(config, &args);
    if (!declare_durable_queue(connection, spare_channel, binding.queue, args)) {
      SBUS_LOG(kWarn) << "event queue " << binding.queue << " exists with other arguments (another queue_type?)"
                      << " and is used as it is";
    }
    declared = binding.queue;
  }
  amqp_channel_open(c, spare_channel);
  connection.check_last("open channel for the event bindings");
  // New bindings first: a topic that moves from one pattern to another
  // (orders.* to orders.#) is never unrouted in between.
  for (const EventBinding& binding : bindings) bind(connection, spare_channel, config, binding);
  for (const EventBinding& binding : config.retired_bindings) unbind(connection, spare_channel, config, binding);
  amqp_channel_close(c, spare_channel, AMQP_REPLY_SUCCESS);
  connection.check_last("close channel of the event bindings");
}

std::vector<std::string> consume_event_queues(AmqpConnection& connection, amqp_channel_t channel,
                                              const Config& config) {
  std::vector<std::string> tags;
  for (const ServiceConfig& service : config.services) {
    if (service.kind != ServiceKind::kEvent) continue;
    const std::string queue = event_queue_name(config, service);
    const std::string tag = std::string(kEventConsumerPrefix) + service.name;
    amqp_basic_consume(connection.get(), channel, to_bytes(queue), to_bytes(tag), 0, 0, 0, amqp_empty_table);
    connection.check_last("consume from " + queue);
    tags.push_back(tag);
  }
  return tags;
}

std::optional<std::string> event_service_of(std::string_view consumer_tag) {
  if (consumer_tag.substr(0, kEventConsumerPrefix.size()) != kEventConsumerPrefix) return std::nullopt;
  return std::string(consumer_tag.substr(kEventConsumerPrefix.size()));
}

}  // namespace sbus
