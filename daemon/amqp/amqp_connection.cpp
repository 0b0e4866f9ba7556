#include "amqp/amqp_connection.hpp"

#include <amqp_tcp_socket.h>

#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "base/error.hpp"
#include "base/log.hpp"
#include "amqp/port_probe.hpp"

namespace sbus {

namespace {

// Why a TCP connect failed, as an operator reads it. rabbitmq-c says "a
// socket error occurred" for a refused connection and keeps the reason to
// itself: a second connect, on this failure path only, finds it.
std::string describe_open_failure(const BrokerUri& uri, int status, std::chrono::milliseconds timeout) {
  if (status == AMQP_STATUS_SOCKET_ERROR) {
    switch (connect_error(uri.host, uri.port, std::min<std::chrono::milliseconds>(timeout, std::chrono::seconds(1)))) {
      case ECONNREFUSED: return "connection refused";
      case EHOSTUNREACH: return "no route to host";
      case ENETUNREACH: return "network unreachable";
      case ETIMEDOUT: return "timed out";
      default: break;
    }
  }
  if (status == AMQP_STATUS_TIMEOUT) return "timed out";
  return amqp_error_string2(status);
}

}  // namespace

std::string bytes_to_string(amqp_bytes_t bytes) {
  return std::string(static_cast<const char*>(bytes.bytes), bytes.len);
}

bool clone_properties(const amqp_basic_properties_t& in, amqp_basic_properties_t* out, amqp_pool_t* pool) {
  *out = in;
  // rabbitmq-c decodes only the fields whose flag is set; the others hold
  // whatever the pool's recycled page held before.
  const std::pair<amqp_bytes_t amqp_basic_properties_t::*, amqp_flags_t> fields[] = {
      {&amqp_basic_properties_t::content_type, AMQP_BASIC_CONTENT_TYPE_FLAG},
      {&amqp_basic_properties_t::content_encoding, AMQP_BASIC_CONTENT_ENCODING_FLAG},
      {&amqp_basic_properties_t::correlation_id, AMQP_BASIC_CORRELATION_ID_FLAG},
      {&amqp_basic_properties_t::reply_to, AMQP_BASIC_REPLY_TO_FLAG},
      {&amqp_basic_properties_t::expiration, AMQP_BASIC_EXPIRATION_FLAG},
      {&amqp_basic_properties_t::message_id, AMQP_BASIC_MESSAGE_ID_FLAG},
      {&amqp_basic_properties_t::type, AMQP_BASIC_TYPE_FLAG},
      {&amqp_basic_properties_t::user_id, AMQP_BASIC_USER_ID_FLAG},
      {&amqp_basic_properties_t::app_id, AMQP_BASIC_APP_ID_FLAG},
      {&amqp_basic_properties_t::cluster_id, AMQP_BASIC_CLUSTER_ID_FLAG},
  };
  for (const auto& [field, flag] : fields) {
    const amqp_bytes_t& from = in.*field;
    amqp_bytes_t& to = out->*field;
    if (!(in._flags & flag)) {
      to = amqp_empty_bytes;
      continue;
    }
    if (from.len == 0) continue;
    to.bytes = amqp_pool_alloc(pool, from.len);
    if (to.bytes == nullptr) return false;
    std::memcpy(to.bytes, from.bytes, from.len);
  }
  out->headers = amqp_empty_table;
  if ((in._flags & AMQP_BASIC_HEADERS_FLAG) && in.headers.num_entries > 0) {
    return amqp_table_clone(&in.headers, &out->headers, pool) == AMQP_STATUS_OK;
  }
  return true;
}

std::string describe_reply(const amqp_rpc_reply_t& reply) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL: return "ok";
    case AMQP_RESPONSE_NONE: return "no reply from the broker";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION: return amqp_error_string2(reply.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      switch (reply.reply.id) {
        case AMQP_CONNECTION_CLOSE_METHOD: {
          auto* m = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
          return "connection closed by broker: " + bytes_to_string(m->reply_text) + " (" +
                 std::to_string(m->reply_code) + ")";
        }
        case AMQP_CHANNEL_CLOSE_METHOD: {
          auto* m = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
          return "channel closed by broker: " + bytes_to_string(m->reply_text) + " (" + std::to_string(m->reply_code) +
                 ")";
        }
        default: return "unexpected method from broker: " + std::to_string(reply.reply.id);
      }
  }
  return "unknown reply";
}

AmqpConnection AmqpConnection::open(const BrokerUri& uri, const ConnectOptions& options) {
  AmqpConnection connection;
  connection.uri_ = uri;
  connection.state_ = amqp_new_connection();
  if (connection.state_ == nullptr) throw AmqpError("connect to " + uri.redacted() + ": out of memory");
  connection.open_socket(options);
  connection.log_in(options);
  amqp_channel_open(connection.state_, kChannel);
  connection.check_last("channel.open");
  connection.queued_.set_frame_max(static_cast<std::size_t>(amqp_get_frame_max(connection.state_)));
  connection.write_stall_ = options.write_stall;
  return connection;
}

void AmqpConnection::open_socket(const ConnectOptions& options) {
  const BrokerUri& uri = uri_;
  amqp_socket_t* socket = nullptr;
  if (uri.tls) {
    if (!options.tls.verify) {
      SBUS_LOG(kWarn) << "TLS verification is OFF for " << uri.redacted()
                      << " (tls.verify: false / --tls-insecure): its certificate and host name are not "
                         "checked, so anyone on the path can impersonate the broker and read every message";
    }
    tls_ = TlsSocket::attach(state_, uri, options.tls);
    socket = tls_->socket();
    tls_->clear_errors();
  } else {
    socket = amqp_tcp_socket_new(state_);
    if (socket == nullptr) throw AmqpError("connect to " + uri.redacted() + ": cannot create socket");
  }

  timeval timeout{};
  timeout.tv_sec = options.connect_timeout.count() / 1000;
  timeout.tv_usec = (options.connect_timeout.count() % 1000) * 1000;
  amqp_set_handshake_timeout(state_, &timeout);
  amqp_set_rpc_timeout(state_, &timeout);
  int status = amqp_socket_open_noblock(socket, uri.host.c_str(), uri.port, &timeout);
  if (status != AMQP_STATUS_OK) {
    if (tls_ && TlsSocket::is_tls_status(status)) {
      throw AmqpError("TLS handshake with " + uri.redacted() + " failed: " + tls_->explain(status));
    }
    throw BrokerUnreachable("connect to " + uri.redacted() +
                            " failed: " + describe_open_failure(uri, status, options.connect_timeout));
  }
  if (tls_) {
    SBUS_LOG(kDebug) << "TLS with " << uri.redacted() << ": " << tls_->negotiated();
    tls_->clear_errors();
  }
}

void AmqpConnection::log_in(const ConnectOptions& options) {
  const BrokerUri& uri = uri_;
  // consumer_cancel_notify: the broker tells a consumer whose queue was
  // deleted (basic.cancel) instead of leaving it deaf. connection.blocked:
  // it says when a resource alarm stops it reading this connection
  // (note_blocking()) instead of going silent. rabbitmq-c merges these
  // capabilities with its own, which include neither.
  amqp_table_entry_t capabilities[2]{};
  capabilities[0].key = amqp_cstring_bytes("consumer_cancel_notify");
  capabilities[1].key = amqp_cstring_bytes("connection.blocked");
  for (amqp_table_entry_t& capability : capabilities) {
    capability.value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capability.value.value.boolean = 1;
  }
  amqp_table_entry_t properties_entries[2]{};
  properties_entries[0].key = amqp_cstring_bytes("connection_name");
  properties_entries[0].value.kind = AMQP_FIELD_KIND_UTF8;
  properties_entries[0].value.value.bytes = to_bytes(options.connection_name);
  properties_entries[1].key = amqp_cstring_bytes("capabilities");
  properties_entries[1].value.kind = AMQP_FIELD_KIND_TABLE;
  properties_entries[1].value.value.table = amqp_table_t{2, capabilities};
  amqp_table_t properties{2, properties_entries};
  amqp_rpc_reply_t login =
      amqp_login_with_properties(state_, uri.vhost.c_str(), 0, options.frame_max, options.heartbeat_seconds,
                                 &properties, AMQP_SASL_METHOD_PLAIN, uri.user.c_str(), uri.password.c_str());
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    // TLS 1.3: a broker that refuses the client (no certificate, or one it
    // does not trust) says so only after the client finished the handshake.
    if (tls_ && login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
      const int error = login.library_error;
      if (!tls_->broker_refused() && (TlsSocket::is_tls_status(error) || error == AMQP_STATUS_CONNECTION_CLOSED ||
                                      error == AMQP_STATUS_SOCKET_ERROR)) {
        const std::chrono::milliseconds listen =
            std::min<std::chrono::milliseconds>(options.connect_timeout, std::chrono::seconds(2));
        tls_->probe(uri.host, uri.port, listen);
      }
      if (tls_->broker_refused()) {
        throw AmqpError("TLS handshake with " + uri.redacted() + " failed: " + tls_->explain(error));
      }
    }
    throw AmqpError("login to " + uri.redacted() + " failed: " + describe_reply(login));
  }
}

AmqpConnection::AmqpConnection(AmqpConnection&& other) noexcept
    : state_(std::exchange(other.state_, nullptr)),
      uri_(std::move(other.uri_)),
      tls_(std::move(other.tls_)),
      queued_(std::move(other.queued_)),
      write_stall_(other.write_stall_),
      blocked_(std::exchange(other.blocked_, false)),
      blocked_reason_(std::move(other.blocked_reason_)) {
  other.tls_.reset();
}

AmqpConnection& AmqpConnection::operator=(AmqpConnection&& other) noexcept {
  if (this != &other) {
    close();
    state_ = std::exchange(other.state_, nullptr);
    uri_ = std::move(other.uri_);
    tls_ = std::move(other.tls_);
    other.tls_.reset();
    queued_ = std::move(other.queued_);
    write_stall_ = other.write_stall_;
    blocked_ = std::exchange(other.blocked_, false);
    blocked_reason_ = std::move(other.blocked_reason_);
  }
  return *this;
}

AmqpConnection::~AmqpConnection() {
  close();
}

void AmqpConnection::check(const amqp_rpc_reply_t& reply, std::string_view operation) const {
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) return;
  throw AmqpError(std::string(operation) + " on " + uri_.redacted() + " failed: " + describe_reply(reply));
}

void AmqpConnection::check_last(std::string_view operation) const {
  check(amqp_get_rpc_reply(state_), operation);
}

void AmqpConnection::check_status(int status, std::string_view operation) const {
  if (status == AMQP_STATUS_OK) return;
  throw AmqpError(std::string(operation) + " on " + uri_.redacted() + " failed: " + amqp_error_string2(status));
}

int AmqpConnection::queue_publish(amqp_channel_t channel, amqp_bytes_t exchange, amqp_bytes_t routing_key,
                                  const amqp_basic_properties_t& properties, amqp_bytes_t body, bool mandatory) {
  return queued_.add_publish(channel, exchange, routing_key, mandatory, properties, body);
}

int AmqpConnection::queue_method(amqp_channel_t channel, amqp_method_number_t method, void* decoded) {
  return queued_.add_method(channel, method, decoded);
}

int AmqpConnection::flush() {
  if (queued_.empty()) return AMQP_STATUS_OK;
  if (state_ == nullptr) {
    queued_.clear();
    return AMQP_STATUS_SOCKET_ERROR;
  }
  // No limit while blocked: the broker reads again once the alarm clears.
  const std::chrono::milliseconds stall = blocked_ ? std::chrono::milliseconds(-1) : write_stall_;
  // Over TLS through rabbitmq-c's socket: OpenSSL frames the bytes.
  if (tls_) return queued_.write_through(state_, stall);
  return queued_.write_to(amqp_get_sockfd(state_), stall);
}

bool AmqpConnection::note_blocking(const amqp_frame_t& frame) {
  if (frame.frame_type != AMQP_FRAME_METHOD || frame.channel != 0) return false;
  if (frame.payload.method.id == AMQP_CONNECTION_BLOCKED_METHOD) {
    blocked_ = true;
    blocked_reason_ = bytes_to_string(static_cast<amqp_connection_blocked_t*>(frame.payload.method.decoded)->reason);
    return true;
  }
  if (frame.payload.method.id == AMQP_CONNECTION_UNBLOCKED_METHOD) {
    blocked_ = false;
    return true;
  }
  return false;
}

void AmqpConnection::abandon() {
  if (state_ == nullptr) return;
  amqp_destroy_connection(state_);
  state_ = nullptr;
  tls_.reset();
  queued_.clear();
}

void AmqpConnection::close() {
  if (state_ == nullptr) return;
  // A connection whose setup failed before it had a socket (no TLS module,
  // say) has nothing to close: rabbitmq-c would assert on sending.
  // Nor has one that the broker blocked: it reads nothing more from it,
  // so the closing handshake could only time out.
  if (amqp_get_socket(state_) == nullptr || blocked_) {
    abandon();
    return;
  }
  // Short timeouts: a dead broker must not hold up a stop.
  if (!queued_.empty()) {
    if (tls_) {
      queued_.write_through(state_, std::chrono::seconds(1));
    } else {
      queued_.write_to(amqp_get_sockfd(state_), std::chrono::seconds(1));
    }
  }
  timeval quick{1, 0};
  amqp_set_rpc_timeout(state_, &quick);
  amqp_channel_close(state_, kChannel, AMQP_REPLY_SUCCESS);
  amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(state_);
  state_ = nullptr;
  tls_.reset();
  queued_.clear();
}

}  // namespace sbus
