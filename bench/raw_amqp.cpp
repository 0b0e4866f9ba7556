#include "raw_amqp.hpp"

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

RawConnection::RawConnection(int port) {
  state_ = amqp_new_connection();
  if (state_ == nullptr) throw std::runtime_error("amqp_new_connection: out of memory");
  amqp_socket_t* socket = amqp_tcp_socket_new(state_);
  if (socket == nullptr) {
    amqp_destroy_connection(state_);
    throw std::runtime_error("amqp_tcp_socket_new failed");
  }
  const int status = amqp_socket_open(socket, "127.0.0.1", port);
  if (status != AMQP_STATUS_OK) {
    amqp_destroy_connection(state_);
    throw std::runtime_error("connect to 127.0.0.1:" + std::to_string(port) + ": " + amqp_error_string2(status));
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
