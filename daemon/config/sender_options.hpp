// The sender settings a config gives: what the sbus CLI uses with --config
// and what each plugin gets through ServiceContext::sender().
#pragma once

#include <sbus/sender.hpp>

#include "config/config.hpp"

namespace sbus {

// The config's brokers in order, exchange, secret, token mode, identity,
// TLS settings and the prefix of deferred delivery.
inline SenderOptions sender_options_of(const Config& config) {
  SenderOptions options;
  options.brokers = config.brokers;
  options.exchange = config.exchange;
  options.events_exchange = config.events_exchange;
  options.secret = config.secret;
  options.token = config.token;
  // The node's own identity, when it has one (`identity:`).
  options.caller = config.identity_id;
  options.caller_key = config.identity_key;
  options.tls_ca_file = config.tls.ca_file;
  options.tls_cert_file = config.tls.cert_file;
  options.tls_key_file = config.tls.key_file;
  options.tls_verify = config.tls.verify;
  options.delay_exchange = config.delay_exchange;
  return options;
}

}  // namespace sbus
