// Sender::Impl: deferred messages, published into the levels that sbusd
// declares (protocol/deferral.hpp, worker/delay_topology.hpp).
#include <vector>

#include "client/sender_impl.hpp"
#include "protocol/deadline.hpp"

namespace sbus {

bool Sender::Impl::exists(bool queue, const std::string& name) {
  amqp_connection_state_t c = connection.get();
  open_error_channel();
  if (queue) {
    amqp_queue_declare(c, kErrorChannel, to_bytes(name), 1, 0, 0, 0, amqp_empty_table);
  } else {
    amqp_exchange_declare(c, kErrorChannel, to_bytes(name), amqp_cstring_bytes("direct"), 1, 0, 0, 0, amqp_empty_table);
  }
  const amqp_rpc_reply_t reply = amqp_get_rpc_reply(c);
  if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
      static_cast<amqp_channel_close_t*>(reply.reply.decoded)->reply_code == AMQP_NOT_FOUND) {
    amqp_channel_close_ok_t ok{};
    if (amqp_send_method(c, kErrorChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK) {
      lost("connection to " + connected + " lost");
    }
    return false;
  }
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
    lost("declare " + name + " passively on " + connected + ": " + describe_reply(reply));
  }
  close_error_channel();
  return true;
}

void Sender::Impl::publish_deferred(const DeferTarget& target, const DelayPlan& plan, std::string_view body,
                                    std::chrono::system_clock::time_point due, const std::string* deadline_header) {
  // The levels hold the message whatever its node: a node with no queue
  // would only be found when the message is due, and dropped then. (A
  // topic needs no subscriber.)
  const std::string checked = std::string(target_kind_name(target.kind)) + " " + target.key;
  if (deferral_checked.count(checked) == 0) {
    if (target.kind == DeferTarget::Kind::kNode && !exists(true, target.key)) {
      throw SenderError(SenderError::Kind::kUnroutable, unroutable_text(target.key));
    }
    const std::string nodes = delay_nodes_exchange(options.delay_exchange);
    if (!exists(false, nodes)) {
      throw SenderError(SenderError::Kind::kPublish,
                        "deferred delivery is not set up on " + connected + ": no exchange " + nodes +
                            " (an sbusd declares it when it connects; is delay_exchange the same there?); not sent");
    }
    deferral_checked.insert(checked);
  }
  open_confirm_channel();
  std::vector<std::pair<std::string, std::string>> headers = delay_headers(plan, target);
  headers.emplace_back(std::string(kDueHeader), deadline_header_value(due));
  if (deadline_header != nullptr) headers.emplace_back(std::string(kDeadlineHeader), *deadline_header);
  std::vector<amqp_table_entry_t> entries;
  entries.reserve(headers.size());
  for (const auto& [name, value] : headers) {
    amqp_table_entry_t entry{to_bytes(name), {}};
    entry.value.kind = AMQP_FIELD_KIND_UTF8;
    entry.value.value.bytes = to_bytes(value);
    entries.push_back(entry);
  }
  // Persistent, and no expiration: one would end the wait in the first
  // level early.
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  props.headers = amqp_table_t{static_cast<int>(entries.size()), entries.data()};
  stamp_message_id(&props);
  const std::string exchange = delay_entry_exchange(options.delay_exchange, plan);
  int status =
      connection.queue_publish(kSendChannel, to_bytes(exchange), to_bytes(target.key), props, to_bytes(body), true);
  if (status == AMQP_STATUS_OK) status = connection.flush();
  if (status != AMQP_STATUS_OK) lost("publish to " + connected + " failed: " + amqp_error_string2(status));
  wait_confirm(++published_on_confirm_channel, target.key, std::chrono::milliseconds(10000));
}

}  // namespace sbus
