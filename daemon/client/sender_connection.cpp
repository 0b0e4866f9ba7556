// Sender::Impl: connect and fail over, a lost connection, a blocked broker.
#include <algorithm>

#include "base/broker_uri.hpp"
#include "client/sender_impl.hpp"

namespace sbus {

ConnectOptions Sender::Impl::connect_options() const {
  ConnectOptions connect_options;
  connect_options.connect_timeout = options.connect_timeout;
  connect_options.heartbeat_seconds = 0;
  connect_options.connection_name = connection_name;
  connect_options.tls.ca_file = options.tls_ca_file;
  connect_options.tls.cert_file = options.tls_cert_file;
  connect_options.tls.key_file = options.tls_key_file;
  connect_options.tls.verify = options.tls_verify;
  return connect_options;
}

void Sender::Impl::use(AmqpConnection opened, std::size_t index) {
  connection = std::move(opened);
  connected = connection.uri().redacted();
  broker = index;
  consuming_replies = false;
  confirming_calls = false;
  calls_published = 0;
  calls_unconfirmed.clear();
  calls_nacked.clear();
  confirming = false;
  published_on_confirm_channel = 0;
  deferral_checked.clear();
  events_lost += events_pending;
  events_pending = 0;
  events_pending_tag = 0;
}

std::optional<std::size_t> Sender::Impl::open_first_of(std::size_t from, std::size_t count, std::string* failures) {
  std::vector<BrokerUri> candidates;
  std::vector<std::size_t> indexes;
  for (std::size_t step = 0; step < count; ++step) {
    const std::size_t index = (from + step) % options.brokers.size();
    const std::string& text = options.brokers[index];
    BrokerUri uri;
    std::string error;
    if (!parse_broker_uri(text, &uri, &error)) {
      *failures += "\n  " + text + ": " + error;
      continue;
    }
    candidates.push_back(std::move(uri));
    indexes.push_back(index);
  }
  std::optional<RaceWinner> winner = open_first(candidates, connect_options(), kConnectHeadStart, failures);
  if (!winner) return std::nullopt;
  use(std::move(winner->connection), indexes[winner->index]);
  return broker;
}

void Sender::Impl::connect(const std::string& node) {
  if (connection) return;
  if (options.brokers.empty()) throw SenderError(SenderError::Kind::kConnect, "no broker given");
  std::string failures;
  const std::size_t count = options.brokers.size();
  std::optional<std::size_t> first_open;
  std::size_t from = broker;
  std::size_t left = count;
  while (left > 0) {
    const std::optional<std::size_t> index = open_first_of(from, left, &failures);
    if (!index) break;
    if (!options.smart_route || node.empty()) return;
    if (!first_open) first_open = *index;
    try {
      if (ping_here(node, std::chrono::milliseconds(3000))) return;
      failures += "\n  " + connected + ": " + node + " did not answer PING";
    } catch (const SenderError& e) {
      failures += "\n  " + std::string(e.what());
    }
    drop();
    // The brokers after this one are left to try.
    left -= (*index + count - from) % count + 1;
    from = (*index + 1) % count;
  }
  // Smart route found no broker where the node answers: use the first
  // that accepted, as py-servicebus does, and let the call time out there.
  if (first_open && open_first_of(*first_open, 1, &failures)) return;
  throw SenderError(SenderError::Kind::kConnect, "no broker accepted the connection:" + failures);
}

void Sender::Impl::drop() {
  connection.abandon();
  connected.clear();
}

void Sender::Impl::lost(const std::string& what, SenderError::Kind kind) {
  give_up_connection();
  throw SenderError(kind, what);
}

void Sender::Impl::give_up_connection() {
  drop();
  // Their replies would come on the lost connection: they never will.
  async_pending.clear();
  async_ready.clear();
  async_returned.clear();
  signed_calls.clear();
  broker = (broker + 1) % std::max<std::size_t>(1, options.brokers.size());
}

std::string Sender::Impl::blocked_text() const {
  return "broker blocked: " + (blocked_reason.empty() ? std::string("no reason given") : blocked_reason) + " (via " +
         connected + ")";
}

bool Sender::Impl::note_blocking(const amqp_frame_t& frame) {
  if (!connection.note_blocking(frame)) return false;
  if (connection.blocked()) {
    blocked_during_wait = true;
    blocked_reason = connection.blocked_reason();
    if (fail_over_on_block) lost(blocked_text(), SenderError::Kind::kBlocked);
  }
  return true;
}

}  // namespace sbus
