// A bare rabbitmq-c connection for the benchmark's floor: no sbus code in
// between, so what the floor measures is the broker and rabbitmq-c alone.
//
// A RawConnection belongs to one thread (rabbitmq-c is not thread-safe).
// Failures throw std::runtime_error naming the operation and rabbitmq-c's
// detail.
#pragma once

#include <amqp.h>

#include <string>
#include <string_view>

namespace bench {

inline constexpr amqp_channel_t kRpcChannel = 1;
// Confirmed publishes go on a channel of their own, as in sbus::Sender.
inline constexpr amqp_channel_t kConfirmChannel = 2;
inline constexpr const char* kDirectReplyTo = "amq.rabbitmq.reply-to";
inline constexpr const char* kExchange = "py-servicebus";

inline amqp_bytes_t bytes(std::string_view text) {
  return amqp_bytes_t{text.size(), const_cast<char*>(text.data())};
}
inline std::string text(amqp_bytes_t b) {
  return std::string(static_cast<const char*>(b.bytes), b.len);
}

std::string describe(const amqp_rpc_reply_t& reply);

// Mutual TLS for a connection (amqps://, as production runs): the CA that
// signed the broker's certificate, and the client's certificate and key.
// Empty: plain TCP.
struct TlsFiles {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool enabled() const { return !ca_file.empty(); }
  // DIR/ca.pem, DIR/client.pem and DIR/client.key (tests/tls/make_certs).
  static TlsFiles in(const std::string& dir) {
    return dir.empty() ? TlsFiles{} : TlsFiles{dir + "/ca.pem", dir + "/client.pem", dir + "/client.key"};
  }
};

class RawConnection {
 public:
  // Connects to 127.0.0.1:port as guest on vhost /, without heartbeats, and
  // opens channel 1; with `tls`, through rabbitmq-c's OpenSSL socket to
  // localhost:port, the broker's certificate checked.
  explicit RawConnection(int port, const TlsFiles& tls = {});
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  amqp_connection_state_t get() const { return state_; }
  // The socket's descriptor (for TCP_CORK in the tuned floor).
  int fd() const { return amqp_get_sockfd(state_); }

  // Throws unless the last synchronous method succeeded.
  void check(std::string_view what) const;
  void check_status(int status, std::string_view what) const;

  // Declares the exchange and a queue bound to it under its own name exactly
  // as sbusd declares a node's queue (direct exchange not durable; durable
  // classic queue), so the floor's requests take the same route as sbus's.
  void declare_node_queue(const std::string& queue);
  // A durable classic queue, unbound (as sbusd declares NODE.error).
  void declare_queue(const std::string& queue);
  void delete_queue(const std::string& queue);

 private:
  amqp_connection_state_t state_ = nullptr;
};

}  // namespace bench
