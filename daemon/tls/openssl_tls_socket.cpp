// sbus-tls.so: rabbitmq-c's OpenSSL socket behind the TlsSocket interface
// (amqp/tls_socket.hpp), the only code of sbus that calls OpenSSL's TLS.
// It is a module of its own so that a process maps libssl and libcrypto only
// once it opens an amqps:// connection; it holds its own copy of rabbitmq-c's
// socket code, which acts on the caller's connection state (both copies are
// built from the same librabbitmq.a).
#include <amqp_ssl_socket.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <memory>
#include <system_error>
#include <utility>

#include "amqp/tls_socket.hpp"

namespace sbus {
namespace {

// What the callbacks record.
struct TlsRecord {
  std::string host;
  TlsOptions options;
  // The first certificate the verification refused, and why.
  int verify_error = X509_V_OK;
  std::string cert_subject;
  std::string cert_issuer;
  std::string cert_names;  // "DNS:wrong.example, IP:10.0.0.1"
  std::string cert_not_before;
  std::string cert_not_after;
  // The first fatal alert the broker sent (an SSL_AD_ code), or -1.
  int alert_received = -1;
  std::string negotiated;
};

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* names) const { GENERAL_NAMES_free(names); }
};
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
struct AddrinfoFree {
  void operator()(addrinfo* info) const { freeaddrinfo(info); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, GeneralNamesFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;
using AddrinfoPtr = std::unique_ptr<addrinfo, AddrinfoFree>;

// A socket descriptor, closed on destruction.
class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket& operator=(Socket&&) = delete;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Keeps a SIGPIPE raised by this thread's writes from killing the process
// (the probe writes with OpenSSL's plain socket BIO, which does not pass
// MSG_NOSIGNAL): blocks it for the thread's lifetime of this object and
// discards one that a write raised meanwhile. The process's own handling
// of SIGPIPE is left alone, as a library must.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeGuard() {
    sigset_t pending;
    sigpending(&pending);
    if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
      const timespec now{0, 0};
      sigtimedwait(&pipe_, nullptr, &now);
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_pending_ = false;
};

// A blocking TCP connection to host:port whose connect, reads and writes
// give up after `timeout`; fd -1 if none could be made.
Socket connect_tcp(const std::string& host, int port, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return Socket(-1);
  AddrinfoPtr addresses(found);
  const timeval limit{static_cast<time_t>(timeout.count() / 1000),
                      static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  for (const addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
    Socket socket(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (socket.get() < 0) continue;
    setsockopt(socket.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));  // bounds connect too
    setsockopt(socket.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    if (::connect(socket.get(), a->ai_addr, a->ai_addrlen) == 0) return socket;
  }
  return Socket(-1);
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  return length > 0 ? std::string(data, static_cast<std::size_t>(length)) : std::string();
}

std::string name_text(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "?";
  return bio_text(bio.get());
}

std::string time_text(const ASN1_TIME* time) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || ASN1_TIME_print(bio.get(), time) != 1) return "?";
  return bio_text(bio.get());
}

// The DNS names and IP addresses a certificate is for; its subject when it
// has no subjectAltName (OpenSSL then checks the CN).
std::string names_text(X509* cert) {
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return name_text(X509_get_subject_name(cert));
  std::string text;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    std::string item;
    if (name->type == GEN_DNS) {
      const ASN1_STRING* dns = name->d.dNSName;
      item = "DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                                  static_cast<std::size_t>(ASN1_STRING_length(dns)));
    } else if (name->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = name->d.iPAddress;
      char buffer[INET6_ADDRSTRLEN] = "?";
      const int family = ASN1_STRING_length(ip) == 16 ? AF_INET6 : AF_INET;
      inet_ntop(family, ASN1_STRING_get0_data(ip), buffer, sizeof(buffer));
      item = std::string("IP:") + buffer;
    }
    if (item.empty()) continue;
    if (!text.empty()) text += ", ";
    text += item;
  }
  return text.empty() ? name_text(X509_get_subject_name(cert)) : text;
}

int record_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

TlsRecord* record_of(const SSL* ssl) {
  return static_cast<TlsRecord*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), record_index()));
}

// OpenSSL's verify callback: keeps the first refusal, refuses as OpenSSL
// decided (SSL_VERIFY_PEER then aborts the handshake with the matching alert).
int on_verify(int ok, X509_STORE_CTX* store) {
  if (ok == 1) return ok;
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  TlsRecord* record = ssl != nullptr ? record_of(ssl) : nullptr;
  if (record == nullptr || record->verify_error != X509_V_OK) return ok;
  record->verify_error = X509_STORE_CTX_get_error(store);
  if (X509* cert = X509_STORE_CTX_get_current_cert(store)) {
    record->cert_subject = name_text(X509_get_subject_name(cert));
    record->cert_issuer = name_text(X509_get_issuer_name(cert));
    record->cert_names = names_text(cert);
    record->cert_not_before = time_text(X509_get0_notBefore(cert));
    record->cert_not_after = time_text(X509_get0_notAfter(cert));
  }
  return ok;
}

void on_info(const SSL* ssl, int where, int value) {
  TlsRecord* record = record_of(ssl);
  if (record == nullptr) return;
  if ((where & SSL_CB_READ_ALERT) == SSL_CB_READ_ALERT && (value >> 8) == SSL3_AL_FATAL && record->alert_received < 0) {
    record->alert_received = value & 0xff;
  }
  if ((where & SSL_CB_HANDSHAKE_DONE) != 0) {
    record->negotiated = std::string(SSL_get_version(ssl)) + " " + SSL_CIPHER_get_name(SSL_get_current_cipher(ssl));
  }
}

bool is_ip_literal(const std::string& host) {
  unsigned char address[16];
  return inet_pton(AF_INET, host.c_str(), address) == 1 || inet_pton(AF_INET6, host.c_str(), address) == 1;
}

// The reason of the oldest entry in the thread's OpenSSL error queue (the
// one closest to the cause), and empties the queue. `reason` gets its code.
std::string drain_errors(int* reason = nullptr) {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    if (!text.empty()) continue;
    const char* what = ERR_reason_error_string(code);
    if (ERR_SYSTEM_ERROR(code)) {
      text = std::system_category().message(ERR_GET_REASON(code));  // e.g. a missing file
    } else {
      text = what != nullptr ? what : "OpenSSL error " + std::to_string(ERR_GET_REASON(code));
    }
    if (reason != nullptr) *reason = ERR_GET_LIB(code) == ERR_LIB_SSL ? ERR_GET_REASON(code) : 0;
  }
  return text;
}

std::string alert_text(int alert) {
  // OpenSSL 3.0 names TLS 1.3's alert "unknown".
  if (alert == SSL_AD_CERTIFICATE_REQUIRED) return "certificate required";
  return SSL_alert_desc_string_long(alert);
}

std::string trust_source(const TlsOptions& options) {
  return options.ca_file.empty() ? "the system's trust store" : options.ca_file;
}

std::string verify_hint(const TlsRecord& r) {
  switch (r.verify_error) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
      // A broker that sends its CA along ends its chain with a self-signed
      // root; one that does not, with its own certificate.
      return "unknown CA: " +
             (r.cert_subject == r.cert_issuer ? "the broker's certificate chain ends at " + r.cert_subject
                                              : r.cert_subject + " is issued by " + r.cert_issuer) +
             ", which is not in " + trust_source(r.options);
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return "name mismatch: the broker's certificate is for " + r.cert_names + ", not " + r.host;
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "certificate expired: " + r.cert_subject + " was valid until " + r.cert_not_after;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "certificate not yet valid: " + r.cert_subject + " is valid from " + r.cert_not_before;
    default: return r.cert_subject.empty() ? std::string() : "certificate " + r.cert_subject;
  }
}

std::string alert_hint(const TlsRecord& r) {
  const bool has_cert = !r.options.cert_file.empty();
  switch (r.alert_received) {
    case SSL_AD_CERTIFICATE_REQUIRED:
      return "no client certificate: the broker demands one; give tls.cert_file and tls.key_file, "
             "or sbus --tls-cert and --tls-key";
    case SSL_AD_HANDSHAKE_FAILURE:
      return has_cert ? "the broker shares no TLS version or cipher with sbus, or refused its client certificate"
                      : "no client certificate? the broker may demand one: give tls.cert_file and tls.key_file; "
                        "or it shares no TLS version or cipher with sbus";
    case SSL_AD_PROTOCOL_VERSION: return "TLS version: the broker accepts none of TLS 1.2 or newer";
    case SSL_AD_UNKNOWN_CA:
      return "client certificate refused: the broker does not trust the CA that signed " + r.options.cert_file;
    case SSL_AD_CERTIFICATE_EXPIRED:
      return "client certificate refused: the broker says " + r.options.cert_file + " has expired";
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
      return "client certificate refused: the broker does not accept " + r.options.cert_file;
    default: return {};
  }
}

std::string reason_hint(int reason) {
  switch (reason) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION: return "TLS version: the broker offers only versions older than TLS 1.2";
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG: return "the port does not speak TLS: is it the broker's amqp:// port?";
    default: return {};
  }
}

class OpenSslTlsSocket final : public TlsSocket {
 public:
  OpenSslTlsSocket() : record_(std::make_unique<TlsRecord>()) {}

  // Sets the socket up on `state`; false with *error saying why.
  bool setup(amqp_connection_state_t state, const std::string& host, const TlsOptions& options, std::string* error);

  amqp_socket_t* socket() const override { return socket_; }
  void clear_errors() override { ERR_clear_error(); }
  std::string explain(int status) override;
  bool broker_refused() const override { return record_->alert_received >= 0; }
  void probe(const std::string& host, int port, std::chrono::milliseconds timeout) override;
  std::string negotiated() const override { return record_->negotiated; }

 private:
  amqp_socket_t* socket_ = nullptr;  // owned by the connection state
  SSL_CTX* ctx_ = nullptr;           // the socket's, owned by rabbitmq-c
  // The callbacks point into it: the caller frees the connection state
  // before this object (AmqpConnection does).
  std::unique_ptr<TlsRecord> record_;
};

bool OpenSslTlsSocket::setup(amqp_connection_state_t state, const std::string& host, const TlsOptions& options,
                             std::string* error) {
  record_->host = host;
  record_->options = options;
  ERR_clear_error();
  socket_ = amqp_ssl_socket_new(state);
  if (socket_ == nullptr) {
    *error = "cannot create the SSL socket: " + drain_errors();
    return false;
  }
  ctx_ = static_cast<SSL_CTX*>(amqp_ssl_socket_get_context(socket_));

  int status = amqp_ssl_socket_set_ssl_versions(socket_, AMQP_TLSv1_2, AMQP_TLSvLATEST);
  if (status != AMQP_STATUS_OK) {
    *error = std::string("cannot require TLS 1.2: ") + amqp_error_string2(status);
    return false;
  }
  if (!options.ca_file.empty()) {
    if (amqp_ssl_socket_set_cacert(socket_, options.ca_file.c_str()) != AMQP_STATUS_OK) {
      *error = "cannot load the CA file " + options.ca_file + ": " + drain_errors();
      return false;
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx_) != 1) {
    // rabbitmq-c 0.11 trusts nothing unless told; OpenSSL's default paths
    // are the system store (and honour SSL_CERT_FILE / SSL_CERT_DIR).
    *error = "cannot load the system's trust store: " + drain_errors();
    return false;
  }
  if (!options.cert_file.empty() || !options.key_file.empty()) {
    if (amqp_ssl_socket_set_key(socket_, options.cert_file.c_str(), options.key_file.c_str()) != AMQP_STATUS_OK) {
      *error = "cannot load the client certificate " + options.cert_file + " with key " + options.key_file + ": " +
               drain_errors();
      return false;
    }
  }

  // rabbitmq-c 0.11 checks the host name itself, against DNS names only, so
  // it refuses an IP address even when the certificate lists it. OpenSSL
  // checks both during the handshake (RFC 6125); rabbitmq-c's own check
  // stays on for names.
  const bool ip = is_ip_literal(host);
  if (options.verify) {
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx_);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int set =
        ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) : X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
    if (set != 1) {
      *error = "cannot check the host name " + host + ": " + drain_errors();
      return false;
    }
  }
  amqp_ssl_socket_set_verify_peer(socket_, options.verify ? 1 : 0);
  amqp_ssl_socket_set_verify_hostname(socket_, options.verify && !ip ? 1 : 0);

  // Last, once nothing can fail: the callbacks point into the record.
  SSL_CTX_set_ex_data(ctx_, record_index(), record_.get());
  SSL_CTX_set_info_callback(ctx_, on_info);
  SSL_CTX_set_verify(ctx_, options.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, options.verify ? on_verify : nullptr);
  return true;
}

void OpenSslTlsSocket::probe(const std::string& host, int port, std::chrono::milliseconds timeout) {
  const SigpipeGuard no_sigpipe;
  ERR_clear_error();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Socket socket = connect_tcp(host, port, timeout);
  if (socket.get() < 0) return;
  // From the connection's own context: the same trust, client certificate,
  // host check and callbacks, which record into this socket's record.
  SslPtr ssl(SSL_new(ctx_));
  if (!ssl || SSL_set_fd(ssl.get(), socket.get()) != 1) return;
  if (!is_ip_literal(host)) SSL_set_tlsext_host_name(ssl.get(), host.c_str());
  if (SSL_connect(ssl.get()) != 1) return;  // refused during the handshake: recorded
  // Send nothing (a write could race the broker's close again): read until
  // the broker's alert, its close, or the deadline.
  char byte;
  while (record_->alert_received < 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    pollfd readable{socket.get(), POLLIN, 0};
    if (::poll(&readable, 1, static_cast<int>(left.count())) <= 0) return;
    const int n = SSL_read(ssl.get(), &byte, 1);
    // A session ticket is not data: rabbitmq-c's context has no auto retry.
    if (n <= 0 && SSL_get_error(ssl.get(), n) != SSL_ERROR_WANT_READ) return;
  }
}

std::string OpenSslTlsSocket::explain(int status) {
  const TlsRecord& r = *record_;
  int reason = 0;
  const std::string queue = drain_errors(&reason);
  std::string what;
  std::string why;
  if (r.verify_error != X509_V_OK) {
    what = std::string("certificate verify failed: ") + X509_verify_cert_error_string(r.verify_error);
    why = verify_hint(r);
  } else if (r.alert_received >= 0) {
    what = !queue.empty() ? queue : "the broker sent the alert \"" + alert_text(r.alert_received) + "\"";
    why = alert_hint(r);
  } else if (!queue.empty()) {
    what = queue;
    why = reason_hint(reason);
  } else if (status == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED) {
    what = amqp_error_string2(status);
    why = "name mismatch: the broker's certificate is not for " + r.host;
  } else {
    what = amqp_error_string2(status);
  }
  return why.empty() ? what : what + " (" + why + ")";
}

}  // namespace
}  // namespace sbus

extern "C" __attribute__((visibility("default"))) sbus::TlsSocket* sbus_tls_attach(const char* version,
                                                                                   amqp_connection_state_t state,
                                                                                   const std::string* host,
                                                                                   const sbus::TlsOptions* options,
                                                                                   std::string* error) {
  if (std::string(version) != SBUS_VERSION) {
    *error = std::string("the TLS module is of sbus ") + SBUS_VERSION + ", this program of sbus " + version;
    return nullptr;
  }
  auto tls = std::make_unique<sbus::OpenSslTlsSocket>();
  if (!tls->setup(state, *host, *options, error)) return nullptr;
  return tls.release();
}
