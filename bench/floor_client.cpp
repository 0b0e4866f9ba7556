#include "floor_client.hpp"

#include <charconv>
#include <stdexcept>

namespace bench {

FloorClient::FloorClient(int port, std::string queue, std::string body, const TlsFiles& tls)
    : connection_(port, tls), queue_(std::move(queue)), body_(std::move(body)), started_(kRing) {
  amqp_basic_consume(connection_.get(), kRpcChannel, amqp_cstring_bytes(kDirectReplyTo), amqp_empty_bytes, 0, 1, 0,
                     amqp_empty_table);
  connection_.check("consume " + std::string(kDirectReplyTo));
}

void FloorClient::issue() {
  const std::uint64_t id = ++next_id_;
  auto end = std::to_chars(id_text_, id_text_ + sizeof(id_text_), id).ptr;
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
  props.reply_to = amqp_cstring_bytes(kDirectReplyTo);
  props.correlation_id = amqp_bytes_t{static_cast<std::size_t>(end - id_text_), id_text_};
  started_[id % kRing] = Clock::now();
  connection_.check_status(amqp_basic_publish(connection_.get(), kRpcChannel, amqp_cstring_bytes(kExchange),
                                              bytes(queue_), 0, 0, &props, bytes(body_)),
                           "publish call");
  ++in_flight_;
}

std::optional<std::uint64_t> FloorClient::complete(std::chrono::milliseconds timeout) {
  amqp_connection_state_t c = connection_.get();
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
    if (left.count() < 0) left = std::chrono::microseconds(0);
    timeval wait{static_cast<time_t>(left.count() / 1000000), static_cast<suseconds_t>(left.count() % 1000000)};
    amqp_envelope_t envelope;
    amqp_maybe_release_buffers(c);
    amqp_rpc_reply_t ret = amqp_consume_message(c, &envelope, &wait, 0);
    if (ret.reply_type == AMQP_RESPONSE_NORMAL) {
      const auto now = Clock::now();
      const amqp_bytes_t id = envelope.message.properties.correlation_id;
      std::uint64_t value = 0;
      const char* begin = static_cast<const char*>(id.bytes);
      const bool parsed = std::from_chars(begin, begin + id.len, value).ec == std::errc();
      amqp_destroy_envelope(&envelope);
      if (!parsed || value == 0 || value > next_id_) continue;  // not one of ours
      --in_flight_;
      return static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - started_[value % kRing]).count());
    }
    if (ret.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && ret.library_error == AMQP_STATUS_TIMEOUT)
      return std::nullopt;
    if (ret.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && ret.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
      amqp_frame_t frame;
      connection_.check_status(amqp_simple_wait_frame(c, &frame), "read frame");
      continue;
    }
    throw std::runtime_error("floor client: " + describe(ret));
  }
}

std::uint64_t FloorClient::roundtrip(std::chrono::milliseconds timeout) {
  issue();
  auto latency = complete(timeout);
  if (!latency) throw std::runtime_error("floor client: no reply within " + std::to_string(timeout.count()) + " ms");
  return *latency;
}

void FloorClient::send_confirmed() {
  amqp_connection_state_t c = connection_.get();
  if (!confirming_) {
    amqp_channel_open(c, kConfirmChannel);
    connection_.check("channel.open");
    amqp_confirm_select(c, kConfirmChannel);
    connection_.check("confirm.select");
    confirming_ = true;
  }
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  connection_.check_status(
      amqp_basic_publish(c, kConfirmChannel, amqp_cstring_bytes(kExchange), bytes(queue_), 1, 0, &props, bytes(body_)),
      "publish message");
  const std::uint64_t tag = ++confirm_tag_;
  for (;;) {
    amqp_frame_t frame;
    timeval wait{10, 0};
    connection_.check_status(amqp_simple_wait_frame_noblock(c, &frame, &wait), "wait for confirm");
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_ACK_METHOD: {
        auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        if (frame.channel == kConfirmChannel && ack->delivery_tag >= tag) return;
        break;
      }
      case AMQP_BASIC_RETURN_METHOD: {
        amqp_message_t message;
        amqp_rpc_reply_t ret = amqp_read_message(c, frame.channel, &message, 0);
        if (ret.reply_type == AMQP_RESPONSE_NORMAL) amqp_destroy_message(&message);
        throw std::runtime_error("floor client: message to " + queue_ + " returned unroutable");
      }
      case AMQP_BASIC_NACK_METHOD: throw std::runtime_error("floor client: message nacked");
      case AMQP_CHANNEL_CLOSE_METHOD:
      case AMQP_CONNECTION_CLOSE_METHOD: throw std::runtime_error("floor client: the broker closed the channel");
      default: break;
    }
  }
}

}  // namespace bench
