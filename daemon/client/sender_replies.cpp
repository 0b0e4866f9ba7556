// Sender::Impl: publishing calls and waiting for their replies on the
// direct reply-to consumer.
#include <algorithm>
#include <iterator>

#include "client/sender_impl.hpp"
#include "protocol/deadline.hpp"

namespace sbus {
namespace {

// How long a broker may take to confirm a call (with retry) before the
// call is tried on the next broker.
constexpr std::chrono::milliseconds kCallConfirmWait{1000};

timeval timeval_until(SenderClock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - SenderClock::now());
  if (left.count() < 0) left = std::chrono::microseconds(0);
  return timeval{static_cast<time_t>(left.count() / 1000000), static_cast<suseconds_t>(left.count() % 1000000)};
}

}  // namespace

WireDeadline wire_deadline(std::chrono::milliseconds left) {
  return WireDeadline{deadline_header_value(std::chrono::system_clock::now() + left), expiration_for(left)};
}

// The properties' headers and expiration for `deadline`; `entry` must
// outlive `props`.
void stamp_deadline(const WireDeadline& deadline, amqp_table_entry_t* entry, amqp_basic_properties_t* props) {
  entry->key = amqp_cstring_bytes(kDeadlineHeader.data());
  entry->value.kind = AMQP_FIELD_KIND_UTF8;
  entry->value.value.bytes = to_bytes(deadline.header);
  props->_flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_EXPIRATION_FLAG;
  props->headers.num_entries = 1;
  props->headers.entries = entry;
  props->expiration = to_bytes(deadline.expiration);
}

std::string Sender::Impl::unroutable_text(const std::string& node) const {
  return "no queue for node " + node + " on " + connected + " (exchange " + options.exchange +
         "): is its agent configured with this node name?";
}

void Sender::Impl::consume_replies() {
  if (consuming_replies) return;
  amqp_basic_consume(connection.get(), kChannel, amqp_cstring_bytes(kDirectReplyTo), amqp_empty_bytes, 0, 1, 0,
                     amqp_empty_table);
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(connection.get());
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) lost("consume replies on " + connected + ": " + describe_reply(reply));
  consuming_replies = true;
  if (options.retry > 0) {
    amqp_confirm_select(connection.get(), kChannel);
    reply = amqp_get_rpc_reply(connection.get());
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) lost("confirm.select on " + connected + ": " + describe_reply(reply));
    confirming_calls = true;
  }
}

void Sender::Impl::settle_calls(std::uint64_t tag, bool multiple, bool nacked) {
  auto first = multiple ? calls_unconfirmed.begin() : calls_unconfirmed.find(tag);
  auto last =
      multiple ? calls_unconfirmed.upper_bound(tag) : (first == calls_unconfirmed.end() ? first : std::next(first));
  if (nacked) calls_nacked.insert(first, last);
  calls_unconfirmed.erase(first, last);
}

void Sender::Impl::publish_call(const std::string& node, std::string_view body, const std::string& correlation_id,
                                const WireDeadline* deadline) {
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
  props.reply_to = amqp_cstring_bytes(kDirectReplyTo);
  props.correlation_id = to_bytes(correlation_id);
  stamp_message_id(&props);
  amqp_table_entry_t entry{};
  if (deadline != nullptr) stamp_deadline(*deadline, &entry, &props);
  // One write for the three frames, where rabbitmq-c makes three. Mandatory:
  // a call no queue takes comes back at once (basic.return, before any
  // reply could), rather than waiting out its timeout.
  int status =
      connection.queue_publish(kChannel, to_bytes(options.exchange), to_bytes(node), props, to_bytes(body), true);
  if (status == AMQP_STATUS_OK) status = connection.flush();
  if (status != AMQP_STATUS_OK) lost("publish to " + connected + " failed: " + amqp_error_string2(status));
  if (confirming_calls) calls_unconfirmed.insert(++calls_published);
}

bool Sender::Impl::receive(SenderClock::time_point deadline, std::string* correlation_id, std::string* body,
                           bool* returned) {
  amqp_connection_state_t c = connection.get();
  for (;;) {
    timeval timeout = timeval_until(deadline);
    amqp_maybe_release_buffers(c);
    amqp_frame_t frame;
    int status = amqp_simple_wait_frame_noblock(c, &frame, &timeout);
    if (status == AMQP_STATUS_TIMEOUT) return false;
    if (status != AMQP_STATUS_OK) lost("connection to " + connected + " lost: " + amqp_error_string2(status));
    const bool is_return = frame.frame_type == AMQP_FRAME_METHOD &&
                           frame.payload.method.id == AMQP_BASIC_RETURN_METHOD && frame.channel == kChannel;
    if (!is_return && (frame.frame_type != AMQP_FRAME_METHOD || frame.payload.method.id != AMQP_BASIC_DELIVER_METHOD)) {
      handle_frame(frame);
      continue;
    }
    // A call returned unrouted comes as basic.return, then its content, with
    // the properties it was published with (its correlation id).
    std::string node;
    if (is_return) {
      const auto* back = static_cast<amqp_basic_return_t*>(frame.payload.method.decoded);
      node.assign(static_cast<const char*>(back->routing_key.bytes), back->routing_key.len);
    }
    *returned = is_return;
    // A reply, read without amqp_consume_message()'s pool of its own.
    const amqp_basic_properties_t* props = nullptr;
    status = read_content(c, frame.channel, &props, body, [this](const amqp_frame_t& other) {
      handle_frame(other);
      return true;
    });
    if (status != AMQP_STATUS_OK) lost("connection to " + connected + " lost: " + amqp_error_string2(status));
    correlation_id->clear();
    if (props->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
      correlation_id->assign(static_cast<const char*>(props->correlation_id.bytes), props->correlation_id.len);
    }
    if (is_return) *body = unroutable_text(node);
    return true;
  }
}

void Sender::Impl::handle_frame(const amqp_frame_t& frame) {
  if (frame.frame_type != AMQP_FRAME_METHOD || note_blocking(frame)) return;
  switch (frame.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD:
      if (frame.channel == kChannel) {
        const auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        settle_calls(ack->delivery_tag, ack->multiple != 0, false);
      }
      return;
    case AMQP_BASIC_NACK_METHOD:
      if (frame.channel == kChannel) {
        const auto* nack = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
        settle_calls(nack->delivery_tag, nack->multiple != 0, true);
      }
      return;
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
      lost("broker " + connected + " closed the channel: " +
           describe_reply(amqp_rpc_reply_t{AMQP_RESPONSE_SERVER_EXCEPTION, frame.payload.method, 0}));
    default: return;
  }
}

bool Sender::Impl::wait_reply(const std::string& correlation_id, SenderClock::time_point deadline, std::string* body) {
  std::string id;
  std::string text;
  bool returned = false;
  while (receive(deadline, &id, &text, &returned)) {
    if (returned) {
      if (id == correlation_id) throw SenderError(SenderError::Kind::kUnroutable, text);
      if (async_pending.erase(id) > 0) {
        signed_calls.erase(id);
        async_returned.emplace_back(std::move(id), std::move(text));
      }
      continue;
    }
    if (id == correlation_id) {
      if (!trusted(id, text)) continue;
      *body = std::move(text);
      return true;
    }
    if (async_pending.count(id) > 0 && trusted(id, text)) {
      async_pending.erase(id);
      async_ready.emplace_back(std::move(id), std::move(text));
    }
    // Anything else: a late reply of a call that timed out.
  }
  return false;
}

bool Sender::Impl::trusted(const std::string& id, std::string_view body) {
  auto found = signed_calls.find(id);
  if (found == signed_calls.end()) return true;
  Reply reply;
  DecodeFailure failure;
  if (decode_reply(body, &reply, &failure) &&
      hmac_v2_reply_trusted(signing_key(), found->second.node, found->second.nonce, reply)) {
    signed_calls.erase(found);
    return true;
  }
  ++dropped_replies;
  return false;
}

bool Sender::Impl::ping_here(const std::string& node, std::chrono::milliseconds timeout) {
  const auto deadline = SenderClock::now() + timeout;
  consume_replies();
  const std::string correlation_id = next_event_id();
  const std::optional<WireDeadline> stamp =
      options.send_deadline ? std::optional<WireDeadline>(wire_deadline(timeout)) : std::nullopt;
  publish_call(node, kPingBody, correlation_id, stamp ? &*stamp : nullptr);
  std::string body;
  return wait_reply(correlation_id, deadline, &body) && body == kPongBody;
}

CallResult Sender::Impl::call_once(const std::string& node, Event& event, std::string_view address,
                                   SenderClock::time_point deadline, std::chrono::milliseconds timeout,
                                   std::chrono::system_clock::time_point wall_deadline) {
  connect(node);
  if (fail_over_on_block && connection.blocked()) lost(blocked_text(), SenderError::Kind::kBlocked);
  consume_replies();
  blocked_during_wait = connection.blocked();
  event.id = next_event_id();
  event.token = sign(event, node, true);
  std::optional<WireDeadline> stamp;
  if (options.send_deadline) {
    // The expiration is what is left of the call's time: less on a retry.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SenderClock::now());
    stamp = WireDeadline{deadline_header_value(wall_deadline), expiration_for(left)};
  }
  publish_call(node, encode_event(event), event.id, stamp ? &*stamp : nullptr);
  std::string body;
  bool replied = false;
  if (confirming_calls) {
    // The broker must take the call within a second, or it is tried on the
    // next broker.
    const std::uint64_t tag = calls_published;
    replied = wait_reply(event.id, std::min(deadline, SenderClock::now() + kCallConfirmWait), &body);
    if (!replied && calls_nacked.erase(tag) > 0) lost("broker " + connected + " refused the call (nack)");
    if (!replied && calls_unconfirmed.count(tag) > 0 && SenderClock::now() < deadline) {
      lost("broker " + connected + " did not confirm the call within " + std::to_string(kCallConfirmWait.count()) +
           " ms");
    }
  }
  if (!replied && !wait_reply(event.id, deadline, &body)) {
    signed_calls.erase(event.id);
    if (blocked_during_wait || connection.blocked()) {
      throw SenderError(SenderError::Kind::kBlocked,
                        blocked_text() + ": no reply from " + std::string(address) + " within " +
                            std::to_string(timeout.count()) +
                            " ms; the call was sent and may still run when the alarm clears");
    }
    throw SenderError(SenderError::Kind::kTimeout, "no reply from " + std::string(address) + " within " +
                                                       std::to_string(timeout.count()) + " ms (via " + connected + ")");
  }
  Reply reply;
  DecodeFailure failure;
  if (!decode_reply(body, &reply, &failure)) {
    throw SenderError(SenderError::Kind::kProtocol,
                      "malformed reply from " + std::string(address) + ": " + failure.detail);
  }
  // Moved, not copied: a large reply's text is not copied once more.
  return CallResult{std::move(reply.id), std::move(reply.message), std::move(reply.error_code)};
}

}  // namespace sbus
