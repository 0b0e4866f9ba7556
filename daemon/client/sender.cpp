#include <sbus/sender.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <iterator>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <chrono>

#include "amqp/amqp_connection.hpp"
#include "protocol/error_seal.hpp"
#include "base/broker_uri.hpp"
#include "amqp/connect_race.hpp"
#include "base/error.hpp"
#include "protocol/token.hpp"
#include "protocol/wire_codec.hpp"

namespace sbus {
namespace {

using Clock = std::chrono::steady_clock;

// RabbitMQ's direct reply-to: replies come to the publishing channel without
// a queue of our own.
constexpr const char* kDirectReplyTo = "amq.rabbitmq.reply-to";
// How long a broker may take to confirm a call (with retry) before the
// call is tried on the next broker.
constexpr std::chrono::milliseconds kCallConfirmWait{1000};

struct Address {
  std::string node;
  std::string category;
  std::string service;
};

Address parse_address(std::string_view address) {
  Address parsed;
  std::size_t first = address.find('.');
  std::size_t second = first == std::string_view::npos ? first : address.find('.', first + 1);
  if (second == std::string_view::npos || address.find('.', second + 1) != std::string_view::npos ||
      first == 0 || second == first + 1 || second + 1 == address.size()) {
    throw SenderError(SenderError::Kind::kAddress,
                      "'" + std::string(address) + "' is not NODE.CATEGORY.SERVICE");
  }
  parsed.node = address.substr(0, first);
  parsed.category = address.substr(first + 1, second - first - 1);
  parsed.service = address.substr(second + 1);
  return parsed;
}

std::string id_prefix() {
  char host[128] = {};
  gethostname(host, sizeof(host) - 1);
  return std::string(host) + "-" + std::to_string(getpid()) + "-";
}

}  // namespace

struct Sender::Impl {
  SenderOptions options;
  AmqpConnection connection;
  std::size_t broker = 0;  // index of the connected (or next) broker
  std::string connected;
  bool consuming_replies = false;
  // With retry: calls are published in confirm mode on the reply channel
  // (direct reply-to needs the call published on the consuming channel).
  bool confirming_calls = false;
  std::uint64_t calls_published = 0;
  std::set<std::uint64_t> calls_unconfirmed;  // delivery tags
  std::set<std::uint64_t> calls_nacked;
  bool confirming = false;
  std::uint64_t published_on_confirm_channel = 0;
  std::uint64_t next_id = 0;
  std::string prefix = id_prefix();

  // The channel for confirmed sends: replies and their acks stay apart.
  static constexpr amqp_channel_t kSendChannel = 2;
  // The channel that reads error queues; closing it returns what it held.
  static constexpr amqp_channel_t kErrorChannel = 3;

  // Takes the next message of `queue` on kErrorChannel, unacked; false when
  // the queue is empty.
  bool get(const std::string& queue, DeadLetter* letter, std::uint64_t* tag) {
    amqp_connection_state_t c = connection.get();
    amqp_rpc_reply_t reply = amqp_basic_get(c, kErrorChannel, to_bytes(queue), 0);
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) lost("basic.get from " + queue + " on " + connected + ": " + describe_reply(reply));
    if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return false;
    *tag = static_cast<amqp_basic_get_ok_t*>(reply.reply.decoded)->delivery_tag;
    amqp_message_t message;
    reply = amqp_read_message(c, kErrorChannel, &message, 0);
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) lost("reading from " + queue + " on " + connected + ": " + describe_reply(reply));
    letter->body = bytes_to_string(message.body);
    letter->headers.clear();
    if (message.properties._flags & AMQP_BASIC_HEADERS_FLAG) {
      const amqp_table_t& headers = message.properties.headers;
      for (int i = 0; i < headers.num_entries; ++i) {
        const amqp_table_entry_t& entry = headers.entries[i];
        if (entry.value.kind == AMQP_FIELD_KIND_UTF8 || entry.value.kind == AMQP_FIELD_KIND_BYTES) {
          letter->headers.emplace_back(bytes_to_string(entry.key), bytes_to_string(entry.value.value.bytes));
        }
      }
    }
    amqp_destroy_message(&message);
    return true;
  }

  void open_error_channel() {
    amqp_channel_open(connection.get(), kErrorChannel);
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(connection.get());
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) lost("open channel on " + connected + ": " + describe_reply(reply));
  }

  void close_error_channel() {
    amqp_channel_close(connection.get(), kErrorChannel, AMQP_REPLY_SUCCESS);
  }

  ConnectOptions connect_options() const {
    ConnectOptions connect_options;
    connect_options.connect_timeout = options.connect_timeout;
    connect_options.heartbeat_seconds = 0;
    connect_options.connection_name = "sbus sender";
    connect_options.tls.ca_file = options.tls_ca_file;
    connect_options.tls.cert_file = options.tls_cert_file;
    connect_options.tls.key_file = options.tls_key_file;
    connect_options.tls.verify = options.tls_verify;
    return connect_options;
  }

  void use(AmqpConnection opened, std::size_t index) {
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
  }

  // Opens the first that connects of `count` brokers from `from` on, in
  // the list's order (wrapping around), raced with a head start each
  // (connect_race.hpp): a broker that hangs costs kConnectHeadStart, not
  // the connect timeout. Returns the index of the one opened.
  std::optional<std::size_t> open_first_of(std::size_t from, std::size_t count, std::string* failures) {
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

  // Connects to the first broker, from `broker` on, that accepts; with
  // smart_route and a `node`, to the first one through which the node
  // answers PING.
  void connect(const std::string& node = {}) {
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

  void drop() {
    connection.abandon();
    connected.clear();
  }

  // The connection is gone: forget it, and start from the next broker.
  [[noreturn]] void lost(const std::string& what, SenderError::Kind kind = SenderError::Kind::kConnectionLost) {
    drop();
    // Their replies would come on the lost connection: they never will.
    async_pending.clear();
    async_ready.clear();
    signed_calls.clear();
    broker = (broker + 1) % std::max<std::size_t>(1, options.brokers.size());
    throw SenderError(kind, what);
  }

  // "broker blocked: low on memory (via amqp://...)": what a caller hears
  // instead of "no reply" or "no confirm" when a resource alarm of the
  // broker holds what it sent.
  std::string blocked_text() const {
    return "broker blocked: " + (blocked_reason.empty() ? std::string("no reason given") : blocked_reason) +
           " (via " + connected + ")";
  }

  // A connection.blocked or unblocked read on the connection; true if it
  // was one. While `fail_over_on_block`, a block gives the connection up
  // at once (kBlocked), so what was sent there is tried on the next broker.
  bool note_blocking(const amqp_frame_t& frame) {
    if (!connection.note_blocking(frame)) return false;
    if (connection.blocked()) {
      blocked_during_wait = true;
      blocked_reason = connection.blocked_reason();
      if (fail_over_on_block) lost(blocked_text(), SenderError::Kind::kBlocked);
    }
    return true;
  }
  // Set by note_blocking(); cleared by whoever starts waiting.
  bool blocked_during_wait = false;
  std::string blocked_reason;
  bool fail_over_on_block = false;

  void consume_replies() {
    if (consuming_replies) return;
    amqp_basic_consume(connection.get(), kChannel, amqp_cstring_bytes(kDirectReplyTo), amqp_empty_bytes,
                       0, 1, 0, amqp_empty_table);
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(connection.get());
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) lost("consume replies on " + connected + ": " + describe_reply(reply));
    consuming_replies = true;
    if (options.retry > 0) {
      amqp_confirm_select(connection.get(), kChannel);
      reply = amqp_get_rpc_reply(connection.get());
      if (reply.reply_type != AMQP_RESPONSE_NORMAL) lost("confirm.select on " + connected + ": " + describe_reply(reply));
      confirming_calls = true;
    }
  }

  // A basic.ack or basic.nack of calls published in confirm mode.
  void settle_calls(std::uint64_t tag, bool multiple, bool nacked) {
    auto first = multiple ? calls_unconfirmed.begin() : calls_unconfirmed.find(tag);
    auto last = multiple ? calls_unconfirmed.upper_bound(tag)
                         : (first == calls_unconfirmed.end() ? first : std::next(first));
    if (nacked) calls_nacked.insert(first, last);
    calls_unconfirmed.erase(first, last);
  }

  void publish_call(const std::string& node, std::string_view body, const std::string& correlation_id) {
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
    props.reply_to = amqp_cstring_bytes(kDirectReplyTo);
    props.correlation_id = to_bytes(correlation_id);
    // One write for the three frames, where rabbitmq-c makes three.
    int status = connection.queue_publish(kChannel, to_bytes(options.exchange), to_bytes(node), props, to_bytes(body));
    if (status == AMQP_STATUS_OK) status = connection.flush();
    if (status != AMQP_STATUS_OK) lost("publish to " + connected + " failed: " + amqp_error_string2(status));
    if (confirming_calls) calls_unconfirmed.insert(++calls_published);
  }

  // Publishes a persistent, mandatory message and waits for the broker's
  // confirm.
  void publish_confirmed(const std::string& node, std::string_view body, std::chrono::milliseconds timeout) {
    amqp_connection_state_t c = connection.get();
    if (!confirming) {
      amqp_channel_open(c, kSendChannel);
      amqp_rpc_reply_t reply = amqp_get_rpc_reply(c);
      if (reply.reply_type != AMQP_RESPONSE_NORMAL) lost("open channel on " + connected + ": " + describe_reply(reply));
      amqp_confirm_select(c, kSendChannel);
      reply = amqp_get_rpc_reply(c);
      if (reply.reply_type != AMQP_RESPONSE_NORMAL) lost("confirm.select on " + connected + ": " + describe_reply(reply));
      confirming = true;
    }
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    int status =
        connection.queue_publish(kSendChannel, to_bytes(options.exchange), to_bytes(node), props, to_bytes(body), true);
    if (status == AMQP_STATUS_OK) status = connection.flush();
    if (status != AMQP_STATUS_OK) lost("publish to " + connected + " failed: " + amqp_error_string2(status));
    const std::uint64_t tag = ++published_on_confirm_channel;

    // An unroutable message comes back as basic.return before its ack.
    bool returned = false;
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        if (connection.blocked()) lost(blocked_text() + ": no confirm within " + std::to_string(timeout.count()) + " ms", SenderError::Kind::kBlocked);
        lost("no confirm from " + connected + " within " + std::to_string(timeout.count()) + " ms");
      }
      timeval wait{static_cast<time_t>(left.count() / 1000000), static_cast<suseconds_t>(left.count() % 1000000)};
      amqp_frame_t frame;
      int result = amqp_simple_wait_frame_noblock(c, &frame, &wait);
      if (result == AMQP_STATUS_TIMEOUT) continue;
      if (result != AMQP_STATUS_OK) lost("connection to " + connected + " lost: " + amqp_error_string2(result));
      if (frame.frame_type != AMQP_FRAME_METHOD || note_blocking(frame)) continue;
      switch (frame.payload.method.id) {
        case AMQP_BASIC_RETURN_METHOD: {
          amqp_message_t message;
          amqp_rpc_reply_t ret = amqp_read_message(c, frame.channel, &message, 0);
          if (ret.reply_type != AMQP_RESPONSE_NORMAL) lost("connection to " + connected + " lost");
          amqp_destroy_message(&message);
          returned = frame.channel == kSendChannel;
          break;
        }
        case AMQP_BASIC_DELIVER_METHOD: {
          // A late reply to an earlier call: not waited for any more.
          amqp_message_t message;
          amqp_rpc_reply_t ret = amqp_read_message(c, frame.channel, &message, 0);
          if (ret.reply_type != AMQP_RESPONSE_NORMAL) lost("connection to " + connected + " lost");
          amqp_destroy_message(&message);
          break;
        }
        case AMQP_BASIC_ACK_METHOD: {
          auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
          if (frame.channel != kSendChannel || (ack->delivery_tag < tag && !ack->multiple)) break;
          if (returned) {
            throw SenderError(SenderError::Kind::kUnroutable,
                              "no queue for node " + node + " on " + connected + " (exchange " + options.exchange +
                                  "): is its agent configured with this node name?");
          }
          return;
        }
        case AMQP_BASIC_NACK_METHOD:
          if (frame.channel != kSendChannel) break;
          throw SenderError(SenderError::Kind::kPublish, "broker " + connected + " refused the message (nack)");
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
          lost("broker " + connected + " closed the channel: " + describe_reply(amqp_rpc_reply_t{
                                                                         AMQP_RESPONSE_SERVER_EXCEPTION,
                                                                         frame.payload.method, 0}));
        default:
          break;
      }
    }
  }

  // The next delivery on the reply consumer: false on timeout.
  bool receive(Clock::time_point deadline, std::string* correlation_id, std::string* body) {
    amqp_connection_state_t c = connection.get();
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
      if (left.count() < 0) left = std::chrono::microseconds(0);
      timeval timeout{static_cast<time_t>(left.count() / 1000000), static_cast<suseconds_t>(left.count() % 1000000)};
      amqp_maybe_release_buffers(c);
      amqp_frame_t frame;
      int status = amqp_simple_wait_frame_noblock(c, &frame, &timeout);
      if (status == AMQP_STATUS_TIMEOUT) return false;
      if (status != AMQP_STATUS_OK) lost("connection to " + connected + " lost: " + amqp_error_string2(status));
      if (frame.frame_type != AMQP_FRAME_METHOD || frame.payload.method.id != AMQP_BASIC_DELIVER_METHOD) {
        handle_frame(frame);
        continue;
      }
      // A reply, read without amqp_consume_message()'s pool of its own.
      const amqp_basic_properties_t* props = nullptr;
      status = read_content(c, frame.channel, &props, body, [this](const amqp_frame_t& other) {
        handle_frame(other);
        return true;
      });
      if (status != AMQP_STATUS_OK) lost("connection to " + connected + " lost: " + amqp_error_string2(status));
      correlation_id->clear();
      if (props->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
        correlation_id->assign(static_cast<const char*>(props->correlation_id.bytes), props->correlation_id.len);
      }
      return true;
    }
  }

  // A frame read while waiting for replies that is not one: the broker's
  // confirm of calls published in confirm mode, or a close (which throws).
  void handle_frame(const amqp_frame_t& frame) {
    if (frame.frame_type != AMQP_FRAME_METHOD || note_blocking(frame)) return;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_ACK_METHOD:
        if (frame.channel == kChannel) {
          const auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
          settle_calls(ack->delivery_tag, ack->multiple != 0, false);
        }
        return;
      case AMQP_BASIC_NACK_METHOD:
        if (frame.channel == kChannel) {
          const auto* nack = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
          settle_calls(nack->delivery_tag, nack->multiple != 0, true);
        }
        return;
      case AMQP_CHANNEL_CLOSE_METHOD:
      case AMQP_CONNECTION_CLOSE_METHOD:
        lost("broker " + connected + " closed the channel: " +
             describe_reply(amqp_rpc_reply_t{AMQP_RESPONSE_SERVER_EXCEPTION, frame.payload.method, 0}));
      default:
        return;
    }
  }

  // Waits for the reply with `correlation_id`; false on timeout. Replies of
  // asynchronous calls that arrive meanwhile are kept for next_reply().
  // Replies that fail the hmac-sha256-v2 check are dropped: the call waits
  // on for the real one.
  bool wait_reply(const std::string& correlation_id, Clock::time_point deadline, std::string* body) {
    std::string id;
    std::string text;
    while (receive(deadline, &id, &text)) {
      if (id == correlation_id) {
        if (!trusted(id, text)) continue;
        *body = std::move(text);
        return true;
      }
      if (async_pending.count(id) > 0 && trusted(id, text)) {
        async_pending.erase(id);
        async_ready.emplace_back(std::move(id), std::move(text));
      }
      // Anything else: a late reply of a call that timed out.
    }
    return false;
  }

  // Calls signed hmac-sha256-v2 still waiting for their reply: by event id
  // (also their correlation id), the node and nonce the reply is signed for.
  struct SignedCallWait {
    std::string node;
    std::string nonce;
  };
  std::unordered_map<std::string, SignedCallWait> signed_calls;
  std::uint64_t dropped_replies = 0;

  // Whether `body` may answer the call `id`: always, unless the call was
  // signed hmac-sha256-v2; then only a reply signed for it, or an unsigned
  // refusal before authentication, taken as that error (token.hpp). A
  // reply taken ends the wait; one dropped is counted.
  bool trusted(const std::string& id, std::string_view body) {
    auto found = signed_calls.find(id);
    if (found == signed_calls.end()) return true;
    Reply reply;
    DecodeFailure failure;
    if (decode_reply(body, &reply, &failure) &&
        hmac_v2_reply_trusted(options.secret, found->second.node, found->second.nonce, reply)) {
      signed_calls.erase(found);
      return true;
    }
    ++dropped_replies;
    return false;
  }

  // Asynchronous calls in flight, by event id (also their correlation id),
  // and their replies received while a synchronous call was waiting.
  std::unordered_set<std::string> async_pending;
  std::deque<std::pair<std::string, std::string>> async_ready;

  // PING `node` on the current connection.
  bool ping_here(const std::string& node, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    consume_replies();
    const std::string correlation_id = next_event_id();
    publish_call(node, kPingBody, correlation_id);
    std::string body;
    return wait_reply(correlation_id, deadline, &body) && body == kPongBody;
  }

  // The token of `event` to `node`. For a call (`awaits_reply`) signed
  // hmac-sha256-v2, its reply is then checked (signed_calls).
  std::string sign(const Event& event, const std::string& node, bool awaits_reply) {
    if (options.token == kHmacV2Mode) {
      std::string nonce;
      const SignedCall call{node, event.id, event.category, event.service, event.params, {}};
      std::string token = make_hmac_v2_token(options.secret, call, &nonce);
      if (awaits_reply) signed_calls[event.id] = SignedCallWait{node, std::move(nonce)};
      return token;
    }
    if (options.token == "hmac-sha256") {
      return make_hmac_token(options.secret, event.id, event.category, event.service, event.params);
    }
    if (!compat_tokens) compat_tokens.emplace(options.secret);
    return compat_tokens->today(std::chrono::system_clock::now());
  }
  std::optional<CompatTokens> compat_tokens;

  std::string next_event_id() { return prefix + std::to_string(++next_id); }
};

namespace {

// Sets Impl::fail_over_on_block for one attempt.
class FailOverOnBlock {
 public:
  FailOverOnBlock(bool* flag, bool on) : flag_(flag) { *flag_ = on; }
  ~FailOverOnBlock() { *flag_ = false; }
  FailOverOnBlock(const FailOverOnBlock&) = delete;
  FailOverOnBlock& operator=(const FailOverOnBlock&) = delete;

 private:
  bool* flag_;
};

}  // namespace

Sender::Sender(SenderOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  wire_codec_init();
}
Sender::~Sender() = default;
Sender::Sender(Sender&&) noexcept = default;
Sender& Sender::operator=(Sender&&) noexcept = default;

CallResult Sender::call(std::string_view address, std::string_view params_json,
                        std::chrono::milliseconds timeout) {
  const Address target = parse_address(address);
  const auto deadline = Clock::now() + timeout;
  Event event;
  event.category = target.category;
  event.service = target.service;
  event.params = params_json;

  for (int attempt = 0;; ++attempt) {
    // A call may go to another broker when it is blocked only if the call
    // is safe to run twice (retry): the blocked one may still run it once
    // its alarm clears.
    const FailOverOnBlock fail_over(&impl_->fail_over_on_block, attempt < impl_->options.retry && impl_->options.brokers.size() > 1);
    try {
      impl_->connect(target.node);
      if (impl_->fail_over_on_block && impl_->connection.blocked()) {
        impl_->lost(impl_->blocked_text(), SenderError::Kind::kBlocked);
      }
      impl_->consume_replies();
      impl_->blocked_during_wait = impl_->connection.blocked();
      event.id = impl_->next_event_id();
      event.token = impl_->sign(event, target.node, true);
      impl_->publish_call(target.node, encode_event(event), event.id);
      std::string body;
      bool replied = false;
      if (impl_->confirming_calls) {
        // The broker must take the call within a second, or it is tried
        // on the next broker.
        const std::uint64_t tag = impl_->calls_published;
        replied = impl_->wait_reply(event.id, std::min(deadline, Clock::now() + kCallConfirmWait), &body);
        if (!replied && impl_->calls_nacked.erase(tag) > 0) {
          impl_->lost("broker " + impl_->connected + " refused the call (nack)");
        }
        if (!replied && impl_->calls_unconfirmed.count(tag) > 0 && Clock::now() < deadline) {
          impl_->lost("broker " + impl_->connected + " did not confirm the call within " +
                      std::to_string(kCallConfirmWait.count()) + " ms");
        }
      }
      if (!replied && !impl_->wait_reply(event.id, deadline, &body)) {
        impl_->signed_calls.erase(event.id);
        if (impl_->blocked_during_wait || impl_->connection.blocked()) {
          throw SenderError(SenderError::Kind::kBlocked,
                            impl_->blocked_text() + ": no reply from " + std::string(address) + " within " +
                                std::to_string(timeout.count()) +
                                " ms; the call was sent and may still run when the alarm clears");
        }
        throw SenderError(SenderError::Kind::kTimeout,
                          "no reply from " + std::string(address) + " within " +
                              std::to_string(timeout.count()) + " ms (via " + impl_->connected + ")");
      }
      Reply reply;
      DecodeFailure failure;
      if (!decode_reply(body, &reply, &failure)) {
        throw SenderError(SenderError::Kind::kProtocol,
                          "malformed reply from " + std::string(address) + ": " + failure.detail);
      }
      return CallResult{reply.id, reply.message, reply.error_code};
    } catch (const SenderError& e) {
      impl_->signed_calls.erase(event.id);
      const bool retryable = e.kind() == SenderError::Kind::kConnectionLost ||
                             e.kind() == SenderError::Kind::kConnect || e.kind() == SenderError::Kind::kBlocked;
      if (!retryable || attempt >= impl_->options.retry || Clock::now() >= deadline) throw;
    }
  }
}

void Sender::send(std::string_view address, std::string_view params_json) {
  const Address target = parse_address(address);
  Event event;
  event.category = target.category;
  event.service = target.service;
  event.params = params_json;
  // A lost connection is always worth another broker here: a message is
  // delivered at least once whatever we do.
  const int tries = std::max<int>(1, static_cast<int>(impl_->options.brokers.size())) + impl_->options.retry;
  for (int attempt = 0;; ++attempt) {
    // A blocked broker's notice sends the message to the next one at once.
    const FailOverOnBlock fail_over(&impl_->fail_over_on_block, attempt + 1 < tries && impl_->options.brokers.size() > 1);
    try {
      impl_->connect();
      if (impl_->fail_over_on_block && impl_->connection.blocked()) {
        impl_->lost(impl_->blocked_text(), SenderError::Kind::kBlocked);
      }
      event.id = impl_->next_event_id();
      event.token = impl_->sign(event, target.node, false);
      impl_->publish_confirmed(target.node, encode_event(event), std::chrono::milliseconds(10000));
      return;
    } catch (const SenderError& e) {
      const bool retryable =
          e.kind() == SenderError::Kind::kConnectionLost || e.kind() == SenderError::Kind::kBlocked;
      if (!retryable || attempt + 1 >= tries) throw;
    }
  }
}

bool Sender::ping(std::string_view node, std::chrono::milliseconds timeout) {
  impl_->connect();
  return impl_->ping_here(std::string(node), timeout);
}

std::string Sender::call_async(std::string_view address, std::string_view params_json) {
  const Address target = parse_address(address);
  impl_->connect(target.node);
  impl_->consume_replies();
  Event event;
  event.id = impl_->next_event_id();
  event.category = target.category;
  event.service = target.service;
  event.params = params_json;
  event.token = impl_->sign(event, target.node, true);
  impl_->publish_call(target.node, encode_event(event), event.id);
  impl_->async_pending.insert(event.id);
  return event.id;
}

std::optional<AsyncReply> Sender::next_reply(std::chrono::milliseconds timeout) {
  std::string id;
  std::string body;
  if (!impl_->async_ready.empty()) {
    std::tie(id, body) = std::move(impl_->async_ready.front());
    impl_->async_ready.pop_front();
  } else {
    if (impl_->async_pending.empty() || !impl_->connection) return std::nullopt;
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (!impl_->receive(deadline, &id, &body)) return std::nullopt;
      if (impl_->async_pending.count(id) > 0 && impl_->trusted(id, body)) {
        impl_->async_pending.erase(id);
        break;
      }
    }
  }
  Reply reply;
  DecodeFailure failure;
  if (!decode_reply(body, &reply, &failure)) {
    return AsyncReply{id, CallResult{id, "malformed reply: " + failure.detail, errc::kMalformedReply}};
  }
  return AsyncReply{id, CallResult{reply.id, reply.message, reply.error_code}};
}

std::size_t Sender::in_flight() const { return impl_->async_pending.size() + impl_->async_ready.size(); }

std::vector<DeadLetter> Sender::list_errors(std::string_view node, std::string_view error_queue) {
  const std::string queue = error_queue.empty() ? std::string(node) + ".error" : std::string(error_queue);
  impl_->connect();
  impl_->open_error_channel();
  std::vector<DeadLetter> letters;
  DeadLetter letter;
  std::uint64_t tag = 0;
  while (impl_->get(queue, &letter, &tag)) letters.push_back(letter);
  // Unacked: closing the channel leaves every message where it was.
  impl_->close_error_channel();
  return letters;
}

std::size_t Sender::requeue_errors(std::string_view node, std::string_view error_queue) {
  const std::string queue = error_queue.empty() ? std::string(node) + ".error" : std::string(error_queue);
  if (impl_->options.secret.empty()) {
    // Requeued messages are signed again; signed with no secret, every one
    // would fail its token check and be lost.
    throw SenderError(SenderError::Kind::kAddress, "requeue needs the secret to sign the messages again");
  }
  impl_->connect();
  impl_->open_error_channel();
  // Only what is there now: a message that fails again at once comes back
  // behind us and must not be moved round and round.
  amqp_queue_declare_ok_t* declared = amqp_queue_declare(impl_->connection.get(), Impl::kErrorChannel,
                                                          to_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(impl_->connection.get());
  if (reply.reply_type != AMQP_RESPONSE_NORMAL || declared == nullptr) {
    impl_->lost("queue " + queue + " on " + impl_->connected + ": " + describe_reply(reply));
  }
  const std::uint32_t waiting = declared->message_count;
  std::size_t moved = 0;
  DeadLetter letter;
  std::uint64_t tag = 0;
  try {
    for (std::uint32_t seen = 0; seen < waiting && impl_->get(queue, &letter, &tag); ++seen) {
      // A body the worker dropped unread (over max_message_bytes) cannot
      // be sent again: it stays, unacked until the channel closes.
      if (letter.header("x-sbus-body") == "dropped") continue;
      // Signed again: the original token may be days old by now. Only an
      // entry a worker sealed (error_seal.hpp): one refused for its token,
      // or put into the error queue by anybody else, goes back as it came
      // and is refused again, or signing it would let anybody who can
      // publish have a message signed by whoever requeues.
      Event event;
      DecodeFailure failure;
      if (error_seal_valid(letter.header("x-sbus-seal"), impl_->options.secret, letter.header("x-sbus-node"),
                           letter.body) &&
          decode_event(letter.body, &event, &failure)) {
        event.token = impl_->sign(event, std::string(node), false);
        letter.body = encode_event(event);
      }
      impl_->publish_confirmed(std::string(node), letter.body, std::chrono::milliseconds(10000));
      if (amqp_basic_ack(impl_->connection.get(), Impl::kErrorChannel, tag, 0) != AMQP_STATUS_OK) {
        impl_->lost("ack on " + impl_->connected + " failed");
      }
      ++moved;
    }
  } catch (...) {
    if (impl_->connection) impl_->close_error_channel();
    throw;
  }
  impl_->close_error_channel();
  return moved;
}

std::string Sender::connected_broker() const { return impl_->connected; }

std::uint64_t Sender::dropped_replies() const { return impl_->dropped_replies; }

}  // namespace sbus
