// rabbitmq-c's OpenSSL socket for one amqps:// connection, set up from
// TlsOptions, and the explanation of a failed handshake in words.
//
// rabbitmq-c reports a failed handshake only as a generic status ("SSL
// connection failed") and frees its SSL object before returning. It does
// expose the socket's SSL_CTX (amqp_ssl_socket_get_context), which belongs to
// this one socket: verify and info callbacks on it record what OpenSSL saw
// during this connection (the first certificate error, the alert the broker
// sent, the negotiated version), and the thread's OpenSSL error queue still
// holds the reason after rabbitmq-c returns. explain() turns these into "why":
// unknown CA, name mismatch, expired, no client certificate, TLS version.
//
// Used by AmqpConnection only, on the connection's thread.
#pragma once

#include <amqp.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/broker_uri.hpp"
#include "common/tls_options.hpp"

namespace sbus {

// What the callbacks record; defined in the .cpp file.
struct TlsRecord;

class TlsSocket {
 public:
  // Creates the SSL socket on `state`, which owns and frees it. TLS 1.2 or
  // newer; the broker's certificate is checked against options.ca_file, or
  // OpenSSL's default store (Debian: /etc/ssl/certs) when it is empty, and
  // its name against uri.host (DNS name or IP address), unless
  // options.verify is false, which logs a warning (on every call). Loads the
  // client certificate and key when given. Throws AmqpError "TLS setup for
  // BROKER failed: ..." when a file cannot be used.
  static TlsSocket attach(amqp_connection_state_t state, const BrokerUri& uri,
                          const TlsOptions& options);

  TlsSocket(TlsSocket&& other) noexcept;
  TlsSocket& operator=(TlsSocket&& other) noexcept;
  TlsSocket(const TlsSocket&) = delete;
  TlsSocket& operator=(const TlsSocket&) = delete;
  // The record must outlive the SSL_CTX's callbacks: destroy the connection
  // state first (AmqpConnection does).
  ~TlsSocket();

  amqp_socket_t* socket() const { return socket_; }

  // Clears the thread's OpenSSL error queue, so that what is in it after the
  // next rabbitmq-c call came from that call.
  static void clear_errors();

  // After amqp_socket_open failed with a TLS status of rabbitmq-c (see
  // is_tls_status), or after login failed when broker_refused() is true:
  // why, e.g. "certificate verify failed: unable to get local issuer
  // certificate (unknown CA: ...)". Drains the thread's error queue.
  std::string explain(int status);
  static bool is_tls_status(int status);
  // The broker sent a fatal alert. With TLS 1.3 a broker that demands a
  // client certificate says so only after the client has finished its side
  // of the handshake, so this shows up as a failed login.
  bool broker_refused() const;
  // For a login that failed at the TLS or socket level with no alert seen:
  // rabbitmq-c wrote the AMQP header as soon as its side of the handshake
  // was done, and a broker that had meanwhile refused the client and closed
  // answers that write with a reset, which discards its alert unread. So
  // this makes one more connection to `host`:`port` with the same settings
  // (the same SSL_CTX), sends nothing, and listens up to `timeout` for the
  // broker's verdict; broker_refused() and explain() then include it.
  // Call while the connection state (which owns the SSL_CTX) is alive.
  void probe(const std::string& host, int port, std::chrono::milliseconds timeout);
  // "TLSv1.3 TLS_AES_256_GCM_SHA384" once the handshake is done, else "".
  std::string negotiated() const;

 private:
  TlsSocket();

  amqp_socket_t* socket_ = nullptr;
  void* ctx_ = nullptr;  // the socket's SSL_CTX, owned by rabbitmq-c
  std::unique_ptr<TlsRecord> record_;
};

}  // namespace sbus
