// Sender::Impl: sends held while a service's handler runs
// (SenderOptions::hold, docs/plugins.md "What a handler sends").
//
// A held message is released on the service thread after its handler has
// returned, possibly after the Sender it was sent through is gone (a
// plugin that makes one per message). So it is published through a Sender
// of the releasing thread's own, kept for the next release: one
// connection per service thread that sends, made on its first release.
#include <unistd.h>

#include <string>
#include <tuple>
#include <utility>

#include "client/sender_impl.hpp"

namespace sbus {

namespace {

// Whether two senders publish to the same place in the same way: then one
// connection serves both.
bool same_route(const SenderOptions& a, const SenderOptions& b) {
  return std::tie(a.brokers, a.exchange, a.secret, a.token, a.caller, a.caller_key, a.tls_ca_file, a.tls_cert_file,
                  a.tls_key_file, a.tls_verify, a.retry, a.connect_timeout, a.delay_exchange, a.events_exchange) ==
         std::tie(b.brokers, b.exchange, b.secret, b.token, b.caller, b.caller_key, b.tls_ca_file, b.tls_cert_file,
                  b.tls_key_file, b.tls_verify, b.retry, b.connect_timeout, b.delay_exchange, b.events_exchange);
}

}  // namespace

bool Sender::Impl::hold(std::function<void(Sender&, const std::string& message_id)> publish, bool now) {
  if (!options.hold) return false;
  if (!release_options) {
    SenderOptions own = options;
    own.hold = nullptr;
    own.inherited_deadline = nullptr;
    release_options = std::make_shared<const SenderOptions>(std::move(own));
  }
  return options.hold(
      [publish = std::move(publish), route = release_options](const std::string& id) {
        thread_local std::shared_ptr<const SenderOptions> releasing_route;
        thread_local std::unique_ptr<Sender> releasing;
        if (!releasing || !same_route(*releasing_route, *route)) {
          releasing = std::make_unique<Sender>(*route);
          // Told apart from the service's own senders in the broker's list.
          releasing->impl_->connection_name = "sbus outbox " + std::to_string(::getpid());
          releasing_route = route;
        }
        publish(*releasing, id);
      },
      now);
}

bool Sender::Impl::hold_send(std::string_view address, std::string_view params_json, const SendOptions& send) {
  return hold(
      [address = std::string(address), params = std::string(params_json), send](Sender& sender, const std::string& id) {
        SendOptions with_id = send;
        if (with_id.message_id.empty()) with_id.message_id = id;
        sender.send(address, params, with_id);
      },
      send.now);
}

}  // namespace sbus
