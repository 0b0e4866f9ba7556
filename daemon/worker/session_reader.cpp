#include "worker/broker_session.hpp"

#include <sys/ioctl.h>

#include "base/log.hpp"
#include "protocol/deadline.hpp"
#include "protocol/event_wire.hpp"
#include "worker/event_queues.hpp"
#include "worker/heap_trim.hpp"

// BrokerSession's reading: frames, deliveries and what the broker says.
namespace sbus {
namespace {

// A delivery body's buffer larger than this is given back after the delivery.
constexpr std::size_t kKeptBodyBytes = kLargeBodyBytes;
// After a body larger than this, the channel's frames are given back at once.
constexpr std::size_t kReleaseFramesAfterBytes = 1024 * 1024;

// Where a delivery is answered: a reply_to makes it a call.
void address(const amqp_basic_properties_t& props, Envelope* envelope) {
  if ((props._flags & AMQP_BASIC_REPLY_TO_FLAG) && props.reply_to.len > 0) {
    envelope->reply_to = bytes_to_string(props.reply_to);
    envelope->kind = DeliveryKind::kCall;
  }
  if (props._flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
    envelope->correlation_id = bytes_to_string(props.correlation_id);
  }
}

// An event: from an event service's queue (its consumer tag), or back on
// the node queue from the hold or error queue (its x-sbus-event header).
// Nobody waits for its answer, whatever reply_to it carries.
void mark_event(std::optional<std::string> service, const Headers& headers, Delivery* delivery) {
  if (!service) {
    for (const auto& [key, value] : headers) {
      if (key == kEventServiceHeader) service = value;
    }
  }
  if (!service) return;
  delivery->envelope.kind = DeliveryKind::kEvent;
  delivery->envelope.reply_to.clear();
  delivery->event_service = std::move(*service);
}

// What a delivery's properties say: its address, its headers (a call's
// are not read, only its deadline, unless it came from an event queue:
// then it is an event), its deadline; `body` is the session's buffer.
void read_properties(const amqp_basic_properties_t& props, std::string_view body,
                     const std::optional<std::string>& event_consumer, Delivery* delivery) {
  address(props, &delivery->envelope);
  delivery->body = body;
  if (!delivery->envelope.is_call() || event_consumer) delivery->headers = text_headers(props);
  mark_event(event_consumer, delivery->headers, delivery);
  delivery->deadline = text_header(props, kDeadlineHeader);
  delivery->properties = &props;
}

}  // namespace

namespace {

// A header's value as text, or false for a type the error queue does not keep.
bool header_text(const amqp_field_value_t& field, std::string* value) {
  switch (field.kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: *value = bytes_to_string(field.value.bytes); return true;
    case AMQP_FIELD_KIND_I8: *value = std::to_string(field.value.i8); return true;
    case AMQP_FIELD_KIND_U8: *value = std::to_string(field.value.u8); return true;
    case AMQP_FIELD_KIND_I16: *value = std::to_string(field.value.i16); return true;
    case AMQP_FIELD_KIND_U16: *value = std::to_string(field.value.u16); return true;
    case AMQP_FIELD_KIND_I32: *value = std::to_string(field.value.i32); return true;
    case AMQP_FIELD_KIND_U32: *value = std::to_string(field.value.u32); return true;
    case AMQP_FIELD_KIND_I64: *value = std::to_string(field.value.i64); return true;
    case AMQP_FIELD_KIND_U64: *value = std::to_string(field.value.u64); return true;
    default: return false;
  }
}

}  // namespace

Headers text_headers(const amqp_basic_properties_t& props) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (!(props._flags & AMQP_BASIC_HEADERS_FLAG)) return headers;
  for (int i = 0; i < props.headers.num_entries; ++i) {
    const amqp_table_entry_t& entry = props.headers.entries[i];
    std::string value;
    if (!header_text(entry.value, &value)) continue;
    headers.emplace_back(bytes_to_string(entry.key), std::move(value));
  }
  return headers;
}

std::optional<std::string> text_header(const amqp_basic_properties_t& props, std::string_view key) {
  if (!(props._flags & AMQP_BASIC_HEADERS_FLAG)) return std::nullopt;
  for (int i = 0; i < props.headers.num_entries; ++i) {
    const amqp_table_entry_t& entry = props.headers.entries[i];
    if (std::string_view(static_cast<const char*>(entry.key.bytes), entry.key.len) != key) continue;
    std::string value;
    if (header_text(entry.value, &value)) return value;
    return std::string("(a header of AMQP type ") + static_cast<char>(entry.value.kind) + ")";
  }
  return std::nullopt;
}

// Handles a frame that is not a delivery: the broker closing the channel or
// the connection, cancelling the consumer, or returning a message.
bool BrokerSession::handle_frame(const amqp_frame_t& frame) {
  if (frame.frame_type != AMQP_FRAME_METHOD) return true;
  if (connection_.note_blocking(frame)) {
    probe_.note_blocking(connection_);
    return true;
  }
  if (frame.channel == kProbeChannel && frame.payload.method.id != AMQP_BASIC_RETURN_METHOD &&
      probe_.on_frame(connection_, frame)) {
    return true;
  }
  switch (frame.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: return true;
    case AMQP_BASIC_RETURN_METHOD: {
      amqp_message_t message;
      amqp_rpc_reply_t ret = amqp_read_message(connection_.get(), frame.channel, &message, 0);
      if (ret.reply_type != AMQP_RESPONSE_NORMAL) return false;
      amqp_destroy_message(&message);
      // The probe's message, published through the exchange to this node:
      // nothing routes it there any more.
      if (frame.channel == kProbeChannel) probe_.route_returned();
      return true;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      auto* m = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
      SBUS_LOG(kWarn) << "broker closed the channel: " << log_value(bytes_to_string(m->reply_text)) << " ("
                      << m->reply_code << ")";
      suspect_recent_replies(m->reply_code);
      return false;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
      auto* m = static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
      SBUS_LOG(kWarn) << "broker closed the connection: " << log_value(bytes_to_string(m->reply_text)) << " ("
                      << m->reply_code << ")";
      suspect_recent_replies(m->reply_code);
      amqp_connection_close_ok_t ok{};
      amqp_send_method(connection_.get(), 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
      return false;
    }
    case AMQP_BASIC_CANCEL_METHOD:
      SBUS_LOG(kWarn) << "broker cancelled the consumer of queue " << config_.node;
      return false;
    default: return true;
  }
}

BrokerSession::Read BrokerSession::lost(const char* what, int status) {
  SBUS_LOG(kWarn) << "connection to " << uri_.redacted() << " lost " << what << ": " << amqp_error_string2(status);
  connection_ok_ = false;
  return Read::kLost;
}

// Reads one delivery or frame if one is ready.
BrokerSession::Read BrokerSession::read_one(DeliveryHandler& handler) {
  amqp_connection_state_t c = connection_.get();
  amqp_maybe_release_buffers(c);
  amqp_frame_t frame;
  timeval zero{0, 0};
  // rabbitmq-c times out only after a recv() found the socket empty.
  const int status = amqp_simple_wait_frame_noblock(c, &frame, &zero);
  if (status == AMQP_STATUS_TIMEOUT) return Read::kNothing;
  if (status != AMQP_STATUS_OK) return lost("reading", status);
  if (frame.frame_type == AMQP_FRAME_METHOD && frame.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
    return read_delivery(frame, handler);
  }
  return handle_frame(frame) ? Read::kFrame : Read::kLost;
}

// A delivery: its content (read_content()), then the handler. A frame of
// another channel read meanwhile is handled as read_one() would.
BrokerSession::Read BrokerSession::read_delivery(const amqp_frame_t& deliver, DeliveryHandler& handler) {
  const auto* method = static_cast<const amqp_basic_deliver_t*>(deliver.payload.method.decoded);
  const std::uint64_t tag = method->delivery_tag;
  // Read before read_content(), whose frames may reuse the method's memory;
  // a copy only for an event consumer's delivery.
  const std::optional<std::string> event_consumer = event_service_of(
      std::string_view(static_cast<const char*>(method->consumer_tag.bytes), method->consumer_tag.len));
  const bool redelivered = method->redelivered != 0;
  const amqp_basic_properties_t* props = nullptr;
  bool closed = false;  // a close read in between, already logged by handle_frame()
  // Called by read_content() on this thread, with the lock held: the
  // analysis does not follow the lock into a lambda.
  const auto other = [&](const amqp_frame_t& frame) NO_THREAD_SAFETY_ANALYSIS {
    closed = !handle_frame(frame);
    return !closed;
  };
  std::uint64_t size = 0;
  int status = read_content(connection_.get(), deliver.channel, &props, &body_, other, config_.max_message_bytes, &size,
                            &spill_pool_, &spilled_);
  Delivery delivery;
  if (status == kContentTooLarge) {
    // Refused without holding the body: what the reply and the error queue
    // need of the properties is copied before skip_body() frees them.
    delivery.too_large = size;
    delivery.headers = text_headers(*props);
    address(*props, &delivery.envelope);
    mark_event(event_consumer, delivery.headers, &delivery);
    props = nullptr;
    status = skip_body(connection_.get(), deliver.channel, size, other);
  }
  if (status != AMQP_STATUS_OK) {
    if (closed) return Read::kLost;
    return lost("reading a delivery", status);
  }

  // Only channel 1 consumes calls; the probe channel's direct reply-to
  // consumer takes no acks, and nothing is meant to reach it.
  if (deliver.channel != kChannel) return Read::kFrame;
  // Every delivery, also one left unhandled while stopping, which a
  // multiple ack must never cover.
  acks_.track(tag, !stopping_);
  if (!stopping_ && props != nullptr && probe_.is_own(*props, body_)) {
    // The worker's own message (probe(), prove_own_node()): it arrived.
    if (props->_flags & AMQP_BASIC_REPLY_TO_FLAG) {
      const std::string reply_to = bytes_to_string(props->reply_to);
      replies_.alive(ReplyGuard::address(reply_to), reply_to);
    }
    settle(tag, true);
  } else if (!stopping_) {
    delivery.envelope.generation = generation_;
    delivery.envelope.delivery_tag = tag;
    delivery.redelivered = redelivered;
    if (props != nullptr) read_properties(*props, body_, event_consumer, &delivery);
    handler.on_delivery(delivery);
  }
  // While stopping, a delivery stays unacked: the broker requeues it.
  release_body(deliver.channel, props, delivery.too_large);
  return connection_ok_ ? Read::kFrame : Read::kLost;
}

// After a delivery: a large body's memory goes back. `props` are the
// delivery's, as read_content() returned them.
void BrokerSession::release_body(amqp_channel_t channel, const amqp_basic_properties_t* props,
                                 std::uint64_t too_large) {
  if (body_.capacity() > kKeptBodyBytes) {
    // A large body came in frame_max pieces through the heap: the free
    // chunks it leaves below live ones would stay in RSS once the run of
    // large bodies is over (HeapTrim).
    const bool large = body_.capacity() > kReleaseFramesAfterBytes || too_large > kReleaseFramesAfterBytes;
    std::string().swap(body_);
    if (large) {
      // Its frames too: they are freed when the channel's buffers are
      // released, which would otherwise wait for the next read.
      if (props == &spilled_) recycle_amqp_pool(&spill_pool_);
      props = nullptr;
      amqp_maybe_release_buffers_on_channel(connection_.get(), channel);
    }
    thread_heap_trim().note_large(std::chrono::steady_clock::now());
  } else if (too_large > kKeptBodyBytes) {
    thread_heap_trim().note_large(std::chrono::steady_clock::now());
  }
  if (props == &spilled_) recycle_amqp_pool(&spill_pool_);
}

// One ioctl instead of the recv() that finds nothing and rabbitmq-c's
// poll() after it, on the way to the call. Over TLS, whether OpenSSL holds
// a record back is known only by reading.
bool BrokerSession::socket_empty() {
  amqp_connection_state_t c = connection_.get();
  if (uri_.tls || amqp_frames_enqueued(c) || amqp_data_in_buffer(c)) return false;
  int unread = 0;
  return ::ioctl(connection_.fd(), FIONREAD, &unread) == 0 && unread == 0;
}

bool BrokerSession::has_unread() {
  amqp_connection_state_t c = connection_.get();
  return amqp_frames_enqueued(c) || amqp_data_in_buffer(c);
}

}  // namespace sbus
