// TLS settings for amqps:// brokers, shared by sbusd (the YAML's `tls:`) and
// the sender (SenderOptions, the sbus CLI's --tls-* options).
#pragma once

#include <string>

namespace sbus {

struct TlsOptions {
  std::string ca_file;    // empty: the system's trust store
  std::string cert_file;  // client certificate, for mutual TLS (with key_file)
  std::string key_file;
  // Verify the broker's certificate and host name. Off only by an explicit
  // setting, which is logged loudly on every connect.
  bool verify = true;
};

}  // namespace sbus
