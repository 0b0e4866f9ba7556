// Sender::Impl: messages sent with publisher confirms, and reading an error
// queue, each on a channel of its own.
#include "client/sender_impl.hpp"
#include "protocol/event_wire.hpp"

namespace sbus {

void Sender::Impl::open_confirm_channel() {
  if (confirming) return;
  amqp_connection_state_t c = connection.get();
  amqp_channel_open(c, kSendChannel);
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(c);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) lost("open channel on " + connected + ": " + describe_reply(reply));
  amqp_confirm_select(c, kSendChannel);
  reply = amqp_get_rpc_reply(c);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) lost("confirm.select on " + connected + ": " + describe_reply(reply));
  confirming = true;
}

void Sender::Impl::publish_confirmed(const std::string& node, std::string_view body, std::chrono::milliseconds timeout,
                                     const WireDeadline* deadline, std::string_view event_service) {
  publish_mandatory(options.exchange, node, body, deadline, event_service);
  wait_confirm(published_on_confirm_channel, node, timeout);
}

void Sender::Impl::publish_mandatory(const std::string& exchange, const std::string& routing_key, std::string_view body,
                                     const WireDeadline* deadline, std::string_view event_service) {
  open_confirm_channel();
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  stamp_message_id(&props);
  amqp_table_entry_t entry{};
  if (deadline != nullptr) stamp_deadline(*deadline, &entry, &props);
  amqp_table_entry_t event_entry{};
  if (!event_service.empty() && deadline == nullptr) {
    event_entry.key = amqp_cstring_bytes(kEventServiceHeader.data());
    event_entry.value.kind = AMQP_FIELD_KIND_UTF8;
    event_entry.value.value.bytes = to_bytes(event_service);
    props._flags |= AMQP_BASIC_HEADERS_FLAG;
    props.headers = amqp_table_t{1, &event_entry};
  }
  int status =
      connection.queue_publish(kSendChannel, to_bytes(exchange), to_bytes(routing_key), props, to_bytes(body), true);
  if (status == AMQP_STATUS_OK) status = connection.flush();
  if (status != AMQP_STATUS_OK) lost("publish to " + connected + " failed: " + amqp_error_string2(status));
  ++published_on_confirm_channel;
}

void Sender::Impl::wait_confirm(std::uint64_t tag, const std::string& node, std::chrono::milliseconds timeout,
                                std::size_t* returns) {
  // An unroutable message comes back as basic.return before its ack.
  bool returned = false;
  const auto deadline = SenderClock::now() + timeout;
  for (;;) {
    amqp_frame_t frame;
    if (!next_method(deadline, timeout, &frame)) continue;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_RETURN_METHOD:
      // A late reply to an earlier call: not waited for any more.
      case AMQP_BASIC_DELIVER_METHOD:
        skip_message(frame);
        if (frame.payload.method.id == AMQP_BASIC_RETURN_METHOD) returned = frame.channel == kSendChannel;
        if (returned && returns != nullptr) {
          ++*returns;
          returned = false;
        }
        break;
      case AMQP_BASIC_ACK_METHOD: {
        auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        if (returns != nullptr) {
          // Events: confirms of several in flight; the one of `tag` (or a
          // multiple one past it) ends the wait.
          if (frame.channel == kSendChannel && ack->delivery_tag >= tag) return;
          break;
        }
        if (frame.channel != kSendChannel || (ack->delivery_tag < tag && !ack->multiple)) break;
        if (returned) throw SenderError(SenderError::Kind::kUnroutable, unroutable_text(node));
        return;
      }
      case AMQP_BASIC_NACK_METHOD:
        if (frame.channel != kSendChannel) break;
        throw SenderError(SenderError::Kind::kPublish, "broker " + connected + " refused the message (nack)");
      case AMQP_CHANNEL_CLOSE_METHOD:
        if (returns != nullptr && frame.channel == kSendChannel) no_events_exchange(frame);
        [[fallthrough]];
      case AMQP_CONNECTION_CLOSE_METHOD:
        lost("broker " + connected + " closed the channel: " +
             describe_reply(amqp_rpc_reply_t{AMQP_RESPONSE_SERVER_EXCEPTION, frame.payload.method, 0}));
      default: break;
    }
  }
}

void Sender::Impl::no_events_exchange(const amqp_frame_t& frame) {
  if (static_cast<amqp_channel_close_t*>(frame.payload.method.decoded)->reply_code != AMQP_NOT_FOUND) return;
  // No events exchange: no sbusd with event services has declared it on
  // this broker, so nobody is subscribed. The channel is closed; it is
  // opened again for the next publish.
  amqp_channel_close_ok_t ok{};
  amqp_send_method(connection.get(), kSendChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
  confirming = false;
  published_on_confirm_channel = 0;
  throw SenderError(SenderError::Kind::kUnroutable,
                    "no exchange " + options.events_exchange + " on " + connected +
                        ": no sbusd with event services has declared it, so nobody is subscribed");
}

bool Sender::Impl::next_method(SenderClock::time_point deadline, std::chrono::milliseconds timeout,
                               amqp_frame_t* frame) {
  const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - SenderClock::now());
  if (left.count() <= 0) {
    if (connection.blocked()) {
      lost(blocked_text() + ": no confirm within " + std::to_string(timeout.count()) + " ms",
           SenderError::Kind::kBlocked);
    }
    lost("no confirm from " + connected + " within " + std::to_string(timeout.count()) + " ms");
  }
  timeval wait{static_cast<time_t>(left.count() / 1000000), static_cast<suseconds_t>(left.count() % 1000000)};
  const int result = amqp_simple_wait_frame_noblock(connection.get(), frame, &wait);
  if (result == AMQP_STATUS_TIMEOUT) return false;
  if (result != AMQP_STATUS_OK) lost("connection to " + connected + " lost: " + amqp_error_string2(result));
  return frame->frame_type == AMQP_FRAME_METHOD && !note_blocking(*frame);
}

void Sender::Impl::skip_message(const amqp_frame_t& frame) {
  const bool returned = frame.payload.method.id == AMQP_BASIC_RETURN_METHOD;
  std::string routing_key;
  if (returned) {
    const auto* back = static_cast<amqp_basic_return_t*>(frame.payload.method.decoded);
    routing_key.assign(static_cast<const char*>(back->routing_key.bytes), back->routing_key.len);
  }
  amqp_message_t message;
  amqp_rpc_reply_t read = amqp_read_message(connection.get(), frame.channel, &message, 0);
  if (read.reply_type != AMQP_RESPONSE_NORMAL) lost("connection to " + connected + " lost");
  if (returned && frame.channel == kChannel && (message.properties._flags & AMQP_BASIC_CORRELATION_ID_FLAG)) {
    // An asynchronous call returned unrouted: next_reply() says so.
    std::string id(static_cast<const char*>(message.properties.correlation_id.bytes),
                   message.properties.correlation_id.len);
    if (async_pending.erase(id) > 0) {
      signed_calls.erase(id);
      async_returned.emplace_back(std::move(id), unroutable_text(routing_key));
    }
  }
  amqp_destroy_message(&message);
}

bool Sender::Impl::get(const std::string& queue, DeadLetter* letter, std::uint64_t* tag) {
  amqp_connection_state_t c = connection.get();
  amqp_rpc_reply_t reply = amqp_basic_get(c, kErrorChannel, to_bytes(queue), 0);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
    lost("basic.get from " + queue + " on " + connected + ": " + describe_reply(reply));
  }
  if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return false;
  *tag = static_cast<amqp_basic_get_ok_t*>(reply.reply.decoded)->delivery_tag;
  amqp_message_t message;
  reply = amqp_read_message(c, kErrorChannel, &message, 0);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
    lost("reading from " + queue + " on " + connected + ": " + describe_reply(reply));
  }
  letter->body = bytes_to_string(message.body);
  letter->headers.clear();
  letter->message_id.clear();
  if (message.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) {
    letter->message_id = bytes_to_string(message.properties.message_id);
  }
  if (message.properties._flags & AMQP_BASIC_HEADERS_FLAG) {
    const amqp_table_t& headers = message.properties.headers;
    for (int i = 0; i < headers.num_entries; ++i) {
      const amqp_table_entry_t& entry = headers.entries[i];
      if (entry.value.kind == AMQP_FIELD_KIND_UTF8 || entry.value.kind == AMQP_FIELD_KIND_BYTES) {
        letter->headers.emplace_back(bytes_to_string(entry.key), bytes_to_string(entry.value.value.bytes));
      }
    }
  }
  amqp_destroy_message(&message);
  return true;
}

void Sender::Impl::open_error_channel() {
  amqp_channel_open(connection.get(), kErrorChannel);
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(connection.get());
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) lost("open channel on " + connected + ": " + describe_reply(reply));
}

void Sender::Impl::close_error_channel() {
  amqp_channel_close(connection.get(), kErrorChannel, AMQP_REPLY_SUCCESS);
}

}  // namespace sbus
