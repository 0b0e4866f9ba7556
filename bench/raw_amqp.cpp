#include "raw_amqp.hpp"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include <stdexcept>

namespace bench {

std::string describe(const amqp_rpc_reply_t& reply) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL: return "ok";
    case AMQP_RESPONSE_NONE: return "no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION: return amqp_error_string2(reply.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto* m = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
        return "channel closed: " + text(m->reply_text);
      }
      if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto* m = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
        return "connection closed: " + text(m->reply_text);
      }
      return "server exception, method " + std::to_string(reply.reply.id);
  }
  return "unknown reply";
}

namespace {

amqp_socket_t* tls_socket(amqp_connection_state_t state, const TlsFiles& tls) {
  amqp_socket_t* socket = amqp_ssl_socket_new(state);
  if (socket == nullptr) return nullptr;
  if (amqp_ssl_socket_set_cacert(socket, tls.ca_file.c_str()) != AMQP_STATUS_OK ||
      amqp_ssl_socket_set_key(socket, tls.cert_file.c_str(), tls.key_file.c_str()) != AMQP_STATUS_OK) {
    throw std::runtime_error("cannot read the TLS files " + tls.ca_file + ", " + tls.cert_file + ", " + tls.key_file);
  }
  return socket;
}

}  // namespace

RawConnection::RawConnection(int port, const TlsFiles& tls) {
  state_ = amqp_new_connection();
  if (state_ == nullptr) throw std::runtime_error("amqp_new_connection: out of memory");
  amqp_socket_t* socket = nullptr;
  try {
    socket = tls.enabled() ? tls_socket(state_, tls) : amqp_tcp_socket_new(state_);
  } catch (...) {
    amqp_destroy_connection(state_);
    throw;
  }
  if (socket == nullptr) {
    amqp_destroy_connection(state_);
    throw std::runtime_error("amqp_tcp_socket_new failed");
  }
  // The server certificate names localhost (and 127.0.0.1, which rabbitmq-c
  // does not match against an IP address entry).
  const char* host = tls.enabled() ? "localhost" : "127.0.0.1";
  const int status = amqp_socket_open(socket, host, port);
  if (status != AMQP_STATUS_OK) {
    amqp_destroy_connection(state_);
    throw std::runtime_error("connect to " + std::string(host) + ":" + std::to_string(port) + ": " +
                             amqp_error_string2(status));
  }
  amqp_rpc_reply_t login =
      amqp_login(state_, "/", 0, AMQP_DEFAULT_FRAME_SIZE, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    amqp_destroy_connection(state_);
    throw std::runtime_error("login to 127.0.0.1:" + std::to_string(port) + ": " + describe(login));
  }
  amqp_channel_open(state_, kRpcChannel);
  check("channel.open");
}

RawConnection::~RawConnection() {
  timeval quick{1, 0};
  amqp_set_rpc_timeout(state_, &quick);
  amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(state_);
}

void RawConnection::check(std::string_view what) const {
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(state_);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) throw std::runtime_error(std::string(what) + ": " + describe(reply));
}

void RawConnection::check_status(int status, std::string_view what) const {
  if (status != AMQP_STATUS_OK) throw std::runtime_error(std::string(what) + ": " + amqp_error_string2(status));
}

void RawConnection::declare_node_queue(const std::string& queue) {
  amqp_exchange_declare(state_, kRpcChannel, amqp_cstring_bytes(kExchange), amqp_cstring_bytes("direct"), 0, 0, 0, 0,
                        amqp_empty_table);
  check("declare exchange");
  amqp_queue_declare(state_, kRpcChannel, bytes(queue), 0, 1, 0, 0, amqp_empty_table);
  check("declare queue " + queue);
  amqp_queue_bind(state_, kRpcChannel, bytes(queue), amqp_cstring_bytes(kExchange), bytes(queue), amqp_empty_table);
  check("bind queue " + queue);
}

void RawConnection::declare_queue(const std::string& queue) {
  amqp_queue_declare(state_, kRpcChannel, bytes(queue), 0, 1, 0, 0, amqp_empty_table);
  check("declare queue " + queue);
}

void RawConnection::delete_queue(const std::string& queue) {
  amqp_queue_delete(state_, kRpcChannel, bytes(queue), 0, 0);
  check("delete queue " + queue);
}

}  // namespace bench
