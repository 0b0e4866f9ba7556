#include "worker/node_queues.hpp"

#include <cstdint>
#include <string_view>
#include <vector>

#include "base/log.hpp"

namespace sbus {
namespace {

// Table entries point into strings the caller keeps alive.
amqp_table_entry_t text_entry(const char* key, std::string_view value) {
  amqp_table_entry_t entry{amqp_cstring_bytes(key), {}};
  entry.value.kind = AMQP_FIELD_KIND_UTF8;
  entry.value.value.bytes = to_bytes(value);
  return entry;
}

amqp_table_entry_t number_entry(const char* key, std::int64_t value) {
  amqp_table_entry_t entry{amqp_cstring_bytes(key), {}};
  entry.value.kind = AMQP_FIELD_KIND_I64;
  entry.value.value.i64 = value;
  return entry;
}

}  // namespace

bool declare_durable_queue(AmqpConnection& connection, amqp_channel_t channel, const std::string& queue,
                           std::vector<amqp_table_entry_t>& args) {
  amqp_connection_state_t c = connection.get();
  amqp_channel_open(c, channel);
  connection.check_last("open channel for queue " + queue);
  amqp_queue_declare(c, channel, to_bytes(queue), 0, 1, 0, 0, amqp_table_t{static_cast<int>(args.size()), args.data()});
  const amqp_rpc_reply_t reply = amqp_get_rpc_reply(c);
  const bool refused = reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
                       reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
                       static_cast<amqp_channel_close_t*>(reply.reply.decoded)->reply_code == AMQP_PRECONDITION_FAILED;
  if (!refused) {
    connection.check(reply, "declare queue " + queue);
    amqp_channel_close(c, channel, AMQP_REPLY_SUCCESS);
    connection.check_last("close channel for queue " + queue);
    return true;
  }
  amqp_channel_close_ok_t ok{};
  connection.check_status(amqp_send_method(c, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok), "channel.close-ok");
  amqp_channel_open(c, channel);
  connection.check_last("open channel for queue " + queue);
  amqp_queue_declare(c, channel, to_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
  connection.check_last("declare queue " + queue + " passively");
  amqp_channel_close(c, channel, AMQP_REPLY_SUCCESS);
  connection.check_last("close channel for queue " + queue);
  return false;
}

void add_queue_type(const Config& config, std::vector<amqp_table_entry_t>* args) {
  if (config.queue_type == "quorum") args->push_back(text_entry("x-queue-type", "quorum"));
}

std::string hold_queue_name(const Config& config) {
  return config.node + ".hold";
}

void declare_error_queue(AmqpConnection& connection, amqp_channel_t spare_channel, const Config& config) {
  std::vector<amqp_table_entry_t> args;
  add_queue_type(config, &args);
  args.push_back(number_entry("x-max-length", static_cast<std::int64_t>(config.error_queue_max_length)));
  args.push_back(number_entry("x-max-length-bytes", static_cast<std::int64_t>(config.error_queue_max_bytes)));
  args.push_back(text_entry("x-overflow", "drop-head"));
  if (declare_durable_queue(connection, spare_channel, config.error_queue, args)) return;
  SBUS_LOG(kWarn) << "error queue " << config.error_queue
                  << " exists with other arguments (declared by an older sbusd?) and is used as it is, "
                     "possibly unbounded; bound it with a policy: rabbitmqctl set_policy sbus-error '^"
                  << config.error_queue << "$' '{\"max-length\":" << config.error_queue_max_length
                  << ",\"max-length-bytes\":" << config.error_queue_max_bytes
                  << ",\"overflow\":\"drop-head\"}' --apply-to queues";
}

void declare_hold_queue(AmqpConnection& connection, amqp_channel_t spare_channel, const Config& config) {
  std::vector<amqp_table_entry_t> args;
  add_queue_type(config, &args);
  args.push_back(number_entry("x-message-ttl", config.hold_ms));
  args.push_back(text_entry("x-dead-letter-exchange", ""));
  args.push_back(text_entry("x-dead-letter-routing-key", config.node));
  const std::string queue = hold_queue_name(config);
  if (declare_durable_queue(connection, spare_channel, queue, args)) return;
  SBUS_LOG(kWarn) << "hold queue " << queue
                  << " exists with other arguments (another hold_time?) and is used as it is;"
                     " to apply hold_time, delete it while it is empty (rabbitmqctl delete_queue "
                  << queue << " --if-empty) and restart sbusd";
}

}  // namespace sbus
