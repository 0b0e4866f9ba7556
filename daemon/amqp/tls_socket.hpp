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
// The implementation is the module sbus-tls.so (daemon/tls/), loaded by the
// first attach() of a process and kept until it exits: a process that opens
// no amqps:// connection maps neither libssl nor libcrypto. attach() looks
// for it, in order:
//   - $SBUS_TLS_MODULE, when set;
//   - next to the program or library holding this code (sbusd-worker.so);
//   - in ../libexec/sbus from there (bin/ and lib/, in the build tree too);
//   - in the installed libexec folder (SBUS_TLS_MODULE_INSTALLED).
//
// Used by AmqpConnection only, on the connection's thread.
#pragma once

#include <amqp.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/broker_uri.hpp"
#include "base/tls_options.hpp"

namespace sbus {

class TlsSocket {
 public:
  // Creates the SSL socket on `state`, which owns and frees it. TLS 1.2 or
  // newer; the broker's certificate is checked against options.ca_file, or
  // OpenSSL's default store (Debian: /etc/ssl/certs) when it is empty, and
  // its name against uri.host (DNS name or IP address), unless
  // options.verify is false. Loads the client certificate and key when
  // given. Throws AmqpError "TLS setup for BROKER failed: ..." when a file
  // cannot be used or the module cannot be loaded.
  // The returned object must outlive the SSL_CTX's callbacks: destroy the
  // connection state first (AmqpConnection does).
  static std::unique_ptr<TlsSocket> attach(amqp_connection_state_t state, const BrokerUri& uri,
                                           const TlsOptions& options);

  // Whether `status` (of rabbitmq-c) is one of its TLS failures.
  static bool is_tls_status(int status);

  virtual ~TlsSocket() = default;

  virtual amqp_socket_t* socket() const = 0;

  // Clears the thread's OpenSSL error queue, so that what is in it after the
  // next rabbitmq-c call came from that call.
  virtual void clear_errors() = 0;

  // After amqp_socket_open failed with a TLS status of rabbitmq-c (see
  // is_tls_status), or after login failed when broker_refused() is true:
  // why, e.g. "certificate verify failed: unable to get local issuer
  // certificate (unknown CA: ...)". Drains the thread's error queue.
  virtual std::string explain(int status) = 0;

  // The broker sent a fatal alert. With TLS 1.3 a broker that demands a
  // client certificate says so only after the client has finished its side
  // of the handshake, so this shows up as a failed login.
  virtual bool broker_refused() const = 0;

  // For a login that failed at the TLS or socket level with no alert seen:
  // rabbitmq-c wrote the AMQP header as soon as its side of the handshake
  // was done, and a broker that had meanwhile refused the client and closed
  // answers that write with a reset, which discards its alert unread. So
  // this makes one more connection to `host`:`port` with the same settings
  // (the same SSL_CTX), sends nothing, and listens up to `timeout` for the
  // broker's verdict; broker_refused() and explain() then include it.
  // Call while the connection state (which owns the SSL_CTX) is alive.
  virtual void probe(const std::string& host, int port, std::chrono::milliseconds timeout) = 0;

  // "TLSv1.3 TLS_AES_256_GCM_SHA384" once the handshake is done, else "".
  virtual std::string negotiated() const = 0;
};

// The module's entry point, as sbus-tls.so exports it: a new socket on
// `state`, or nullptr with *error saying why. `version` is the caller's
// SBUS_VERSION; a module of another version refuses.
using TlsAttachFunction = TlsSocket* (*)(const char* version, amqp_connection_state_t state, const std::string* host,
                                         const TlsOptions* options, std::string* error);
inline constexpr const char* kTlsAttachSymbol = "sbus_tls_attach";

// Where attach() looks for sbus-tls.so, in the order above.
std::vector<std::string> tls_module_candidates();

// Loads the first of `candidates` that exists and returns its entry point;
// nullptr with *error naming each path tried and why it failed ("no such
// file", the loader's message, "not an sbus TLS module").
TlsAttachFunction load_tls_module(const std::vector<std::string>& candidates, std::string* error);

}  // namespace sbus
