#include <sbus/sender.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>

#include "common/amqp_connection.hpp"
#include "common/broker_uri.hpp"
#include "common/error.hpp"
#include "common/token.hpp"
#include "common/wire_codec.hpp"

namespace sbus {
namespace {

using Clock = std::chrono::steady_clock;

// RabbitMQ's direct reply-to: replies come to the publishing channel without
// a queue of our own.
constexpr const char* kDirectReplyTo = "amq.rabbitmq.reply-to";

struct Address {
  std::string node;
  std::string category;
  std::string service;
};

Address parse_address(std::string_view address) {
  Address parsed;
  std::size_t first = address.find('.');
  std::size_t second = first == std::string_view::npos ? first : address.find('.', first + 1);
  if (second == std::string_view::npos || address.find('.', second + 1) != std::string_view::npos ||
      first == 0 || second == first + 1 || second + 1 == address.size()) {
    throw SenderError(SenderError::Kind::kAddress,
                      "'" + std::string(address) + "' is not NODE.CATEGORY.SERVICE");
  }
  parsed.node = address.substr(0, first);
  parsed.category = address.substr(first + 1, second - first - 1);
  parsed.service = address.substr(second + 1);
  return parsed;
}

std::string id_prefix() {
  char host[128] = {};
  gethostname(host, sizeof(host) - 1);
  return std::string(host) + "-" + std::to_string(getpid()) + "-";
}

}  // namespace

struct Sender::Impl {
  SenderOptions options;
  AmqpConnection connection;
  std::string connected;
  bool consuming_replies = false;
  std::uint64_t next_id = 0;
  std::string prefix = id_prefix();

  void connect() {
    if (connection) return;
    if (options.brokers.empty()) throw SenderError(SenderError::Kind::kConnect, "no broker given");
    std::string failures;
    for (const std::string& text : options.brokers) {
      BrokerUri uri;
      std::string error;
      if (!parse_broker_uri(text, &uri, &error)) {
        failures += "\n  " + text + ": " + error;
        continue;
      }
      try {
        ConnectOptions connect_options;
        connect_options.connect_timeout = options.connect_timeout;
        connect_options.heartbeat_seconds = 0;
        connect_options.connection_name = "sbus sender";
        connection = AmqpConnection::open(uri, connect_options);
        connected = uri.redacted();
        consuming_replies = false;
        return;
      } catch (const AmqpError& e) {
        failures += "\n  " + std::string(e.what());
      }
    }
    throw SenderError(SenderError::Kind::kConnect, "no broker accepted the connection:" + failures);
  }

  [[noreturn]] void lost(const std::string& what) {
    connection = AmqpConnection();
    connected.clear();
    throw SenderError(SenderError::Kind::kConnectionLost, what);
  }

  void consume_replies() {
    if (consuming_replies) return;
    amqp_basic_consume(connection.get(), kChannel, amqp_cstring_bytes(kDirectReplyTo), amqp_empty_bytes,
                       0, 1, 0, amqp_empty_table);
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(connection.get());
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) lost("consume replies on " + connected + ": " + describe_reply(reply));
    consuming_replies = true;
  }

  void publish(const std::string& node, std::string_view body, const std::string& correlation_id,
               bool rpc) {
    amqp_basic_properties_t props{};
    if (rpc) {
      props._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
      props.reply_to = amqp_cstring_bytes(kDirectReplyTo);
      props.correlation_id = to_bytes(correlation_id);
    } else {
      props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
      props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    }
    int status = amqp_basic_publish(connection.get(), kChannel, to_bytes(options.exchange), to_bytes(node),
                                    0, 0, &props, to_bytes(body));
    if (status != AMQP_STATUS_OK) lost("publish to " + connected + " failed: " + amqp_error_string2(status));
  }

  // Waits for the reply with `correlation_id`; false on timeout.
  bool wait_reply(const std::string& correlation_id, Clock::time_point deadline, std::string* body) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      timeval timeout{static_cast<time_t>(left.count() / 1000000), static_cast<suseconds_t>(left.count() % 1000000)};
      amqp_envelope_t envelope;
      amqp_maybe_release_buffers(connection.get());
      amqp_rpc_reply_t ret = amqp_consume_message(connection.get(), &envelope, &timeout, 0);
      if (ret.reply_type == AMQP_RESPONSE_NORMAL) {
        const amqp_basic_properties_t& props = envelope.message.properties;
        bool match = (props._flags & AMQP_BASIC_CORRELATION_ID_FLAG) &&
                     bytes_to_string(props.correlation_id) == correlation_id;
        if (match) *body = bytes_to_string(envelope.message.body);
        amqp_destroy_envelope(&envelope);
        if (match) return true;
        continue;  // a late reply of an earlier call that timed out
      }
      if (ret.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
        if (ret.library_error == AMQP_STATUS_TIMEOUT) return false;
        if (ret.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
          amqp_frame_t frame;
          if (amqp_simple_wait_frame(connection.get(), &frame) != AMQP_STATUS_OK) lost("connection to " + connected + " lost");
          if (frame.frame_type == AMQP_FRAME_METHOD &&
              (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
               frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)) {
            lost("broker " + connected + " closed the channel");
          }
          continue;
        }
      }
      lost("connection to " + connected + " lost: " + describe_reply(ret));
    }
  }

  std::string next_event_id() { return prefix + std::to_string(++next_id); }
};

Sender::Sender(SenderOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  wire_codec_init();
}
Sender::~Sender() = default;
Sender::Sender(Sender&&) noexcept = default;
Sender& Sender::operator=(Sender&&) noexcept = default;

CallResult Sender::call(std::string_view address, std::string_view params_json,
                        std::chrono::milliseconds timeout) {
  const Address target = parse_address(address);
  const auto deadline = Clock::now() + timeout;
  impl_->connect();
  impl_->consume_replies();

  Event event;
  event.id = impl_->next_event_id();
  event.token = compat_token(impl_->options.secret, local_date(std::chrono::system_clock::now()));
  event.category = target.category;
  event.service = target.service;
  event.params = params_json;
  impl_->publish(target.node, encode_event(event), event.id, true);

  std::string body;
  if (!impl_->wait_reply(event.id, deadline, &body)) {
    throw SenderError(SenderError::Kind::kTimeout,
                      "no reply from " + std::string(address) + " within " +
                          std::to_string(timeout.count()) + " ms (via " + impl_->connected + ")");
  }
  Reply reply;
  DecodeFailure failure;
  if (!decode_reply(body, &reply, &failure)) {
    throw SenderError(SenderError::Kind::kProtocol, "malformed reply from " + std::string(address) + ": " + failure.detail);
  }
  return CallResult{reply.id, reply.message, reply.error_code};
}

void Sender::send(std::string_view address, std::string_view params_json) {
  const Address target = parse_address(address);
  impl_->connect();
  Event event;
  event.id = impl_->next_event_id();
  event.token = compat_token(impl_->options.secret, local_date(std::chrono::system_clock::now()));
  event.category = target.category;
  event.service = target.service;
  event.params = params_json;
  impl_->publish(target.node, encode_event(event), event.id, false);
}

bool Sender::ping(std::string_view node, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  impl_->connect();
  impl_->consume_replies();
  const std::string correlation_id = impl_->next_event_id();
  impl_->publish(std::string(node), kPingBody, correlation_id, true);
  std::string body;
  return impl_->wait_reply(correlation_id, deadline, &body) && body == kPongBody;
}

std::string Sender::connected_broker() const { return impl_->connected; }

}  // namespace sbus
