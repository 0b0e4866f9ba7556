// The inside of sbus::Sender (plugin-sdk/include/sbus/sender.hpp), shared by
// the files that implement it:
//   sender.cpp             the public methods: call, send, ping, pipelining,
//                          the error queue
//   sender_connection.cpp  connect and fail over, a lost connection, blocks
//   sender_replies.cpp     publishing calls and waiting for their replies
//   sender_confirm.cpp     confirmed sends and reading an error queue
//   sender_defer.cpp       deferred messages (protocol/deferral.hpp)
//   sender_signing.cpp     tokens and event ids
//   sender_events.cpp      publishing events
//   sender_hold.cpp        sends held while a service's handler runs
// One thread uses a Sender at a time (the public header says so), so
// nothing here is locked. A method that loses the connection calls lost(),
// which forgets the connection and what waited on it and throws.
#pragma once

#include <sbus/sender.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "amqp/amqp_connection.hpp"
#include "amqp/connect_race.hpp"
#include "protocol/deferral.hpp"
#include "protocol/token.hpp"
#include "protocol/wire_codec.hpp"

namespace sbus {

using SenderClock = std::chrono::steady_clock;

// RabbitMQ's direct reply-to: replies come to the publishing channel without
// a queue of our own.
inline constexpr const char* kDirectReplyTo = "amq.rabbitmq.reply-to";

// "HOST-PID-": what this process's event ids start with (sender_signing.cpp).
std::string event_id_prefix();

// What a call or message carries of its deadline (protocol/deadline.hpp):
// the header x-sbus-deadline and the AMQP expiration.
struct WireDeadline {
  std::string header;      // deadline_header_value()
  std::string expiration;  // expiration_for()
};

// The deadline `left` from now, on the wire.
WireDeadline wire_deadline(std::chrono::milliseconds left);
// Sets the header and expiration of `deadline` on `props`; `entry` (the
// one header) must outlive `props`.
void stamp_deadline(const WireDeadline& deadline, amqp_table_entry_t* entry, amqp_basic_properties_t* props);

struct Sender::Impl {
  // The channel for confirmed sends: replies and their acks stay apart.
  static constexpr amqp_channel_t kSendChannel = 2;
  // The channel that reads error queues; closing it returns what it held.
  static constexpr amqp_channel_t kErrorChannel = 3;

  SenderOptions options;
  AmqpConnection connection;
  std::size_t broker = 0;  // index of the connected (or next) broker
  std::string connected;   // its URI, password hidden; empty when not connected
  // What the broker shows of it (AMQP client property connection_name).
  std::string connection_name = "sbus sender";

  // sender_connection.cpp

  // Connects to the first broker, from `broker` on, that accepts; with
  // smart_route and a `node`, to the first one through which the node
  // answers PING.
  void connect(const std::string& node = {});
  // Opens the first that connects of `count` brokers from `from` on, in
  // the list's order (wrapping around), raced with a head start each
  // (connect_race.hpp): a broker that hangs costs kConnectHeadStart, not
  // the connect timeout. Returns the index of the one opened.
  std::optional<std::size_t> open_first_of(std::size_t from, std::size_t count, std::string* failures);
  ConnectOptions connect_options() const;
  // Takes `opened` as the connection, with nothing of the last one's state.
  void use(AmqpConnection opened, std::size_t index);
  void drop();
  // The connection is gone: forget it and what waited on it, start from the
  // next broker, and throw SenderError of `kind` with `what`.
  [[noreturn]] void lost(const std::string& what, SenderError::Kind kind = SenderError::Kind::kConnectionLost);
  // The same without the throw: a call that no queue takes on this broker
  // moves on to the next.
  void give_up_connection();
  // "no queue for node NODE on BROKER (exchange X): is its agent configured
  // with this node name?": a call or message the broker returned.
  std::string unroutable_text(const std::string& node) const;
  // "broker blocked: low on memory (via amqp://...)": what a caller hears
  // instead of "no reply" or "no confirm" when a resource alarm of the
  // broker holds what it sent.
  std::string blocked_text() const;
  // A connection.blocked or unblocked read on the connection; true if it
  // was one. While `fail_over_on_block`, a block gives the connection up
  // at once (kBlocked), so what was sent there is tried on the next broker.
  bool note_blocking(const amqp_frame_t& frame);
  // Set by note_blocking(); cleared by whoever starts waiting.
  bool blocked_during_wait = false;
  std::string blocked_reason;
  bool fail_over_on_block = false;

  // sender_replies.cpp

  // Starts the reply consumer on kChannel (and, with retry, confirm mode).
  void consume_replies();
  // Published mandatory: with no queue for the node, the broker returns it
  // (basic.return, read by receive()) before any reply could come.
  void publish_call(const std::string& node, std::string_view body, const std::string& correlation_id,
                    const WireDeadline* deadline);
  // A basic.ack or basic.nack of calls published in confirm mode.
  void settle_calls(std::uint64_t tag, bool multiple, bool nacked);
  // The next delivery on the reply consumer, or the next call the broker
  // returned unrouted (then *returned is set and *body is the text of
  // unroutable_text()): false on timeout.
  bool receive(SenderClock::time_point deadline, std::string* correlation_id, std::string* body, bool* returned);
  // A frame read while waiting for replies that is not one: the broker's
  // confirm of calls published in confirm mode, or a close (which throws).
  void handle_frame(const amqp_frame_t& frame);
  // Waits for the reply with `correlation_id`; false on timeout. Replies of
  // asynchronous calls that arrive meanwhile are kept for next_reply().
  // Replies that fail the hmac-sha256-v2 check are dropped: the call waits
  // on for the real one. Throws kUnroutable when the broker returns the
  // call.
  bool wait_reply(const std::string& correlation_id, SenderClock::time_point deadline, std::string* body);
  // Whether `body` may answer the call `id`: always, unless the call was
  // signed hmac-sha256-v2; then only a reply signed for it, or an unsigned
  // refusal before authentication, taken as that error (token.hpp). A
  // reply taken ends the wait; one dropped is counted.
  bool trusted(const std::string& id, std::string_view body);
  // PING `node` on the current connection.
  bool ping_here(const std::string& node, std::chrono::milliseconds timeout);
  // One attempt of Sender::call on the current or next broker.
  CallResult call_once(const std::string& node, Event& event, std::string_view address,
                       SenderClock::time_point deadline, std::chrono::milliseconds timeout,
                       std::chrono::system_clock::time_point wall_deadline);

  bool consuming_replies = false;
  // With retry: calls are published in confirm mode on the reply channel
  // (direct reply-to needs the call published on the consuming channel).
  bool confirming_calls = false;
  std::uint64_t calls_published = 0;
  std::set<std::uint64_t> calls_unconfirmed;  // delivery tags
  std::set<std::uint64_t> calls_nacked;
  // Calls signed hmac-sha256-v2 still waiting for their reply: by event id
  // (also their correlation id), the node and nonce the reply is signed for.
  struct SignedCallWait {
    std::string node;
    std::string nonce;
  };
  std::unordered_map<std::string, SignedCallWait> signed_calls;
  std::uint64_t dropped_replies = 0;
  // Asynchronous calls in flight, by event id (also their correlation id),
  // and their replies received while a synchronous call was waiting.
  std::unordered_set<std::string> async_pending;
  std::deque<std::pair<std::string, std::string>> async_ready;
  // Asynchronous calls the broker returned, with unroutable_text().
  std::deque<std::pair<std::string, std::string>> async_returned;

  // sender_confirm.cpp

  // Publishes a persistent, mandatory message and waits for the broker's
  // confirm.
  // `event_service`: a requeued event's x-sbus-event header (protocol.md).
  void publish_confirmed(const std::string& node, std::string_view body, std::chrono::milliseconds timeout,
                         const WireDeadline* deadline, std::string_view event_service = {});
  // Publishes a persistent, mandatory message to `exchange` on kSendChannel
  // (in confirm mode) without waiting; its confirm's tag is then
  // published_on_confirm_channel.
  void publish_mandatory(const std::string& exchange, const std::string& routing_key, std::string_view body,
                         const WireDeadline* deadline, std::string_view event_service = {});
  // Opens kSendChannel in confirm mode, once per connection.
  void open_confirm_channel();
  // Waits for the confirm of the message `tag` on kSendChannel; throws
  // kUnroutable when it came back unrouted, kPublish on a nack. With
  // `returns` (events), the messages that came back until then are counted
  // there instead, and a missing exchange (NOT_FOUND) throws kUnroutable
  // and leaves the connection usable.
  void wait_confirm(std::uint64_t tag, const std::string& node, std::chrono::milliseconds timeout,
                    std::size_t* returns = nullptr);
  // wait_confirm() with `returns`, for a channel.close `frame`: throws
  // kUnroutable, the channel closed and ready to open again, when the
  // events exchange does not exist; returns for any other close.
  void no_events_exchange(const amqp_frame_t& frame);
  // wait_confirm()'s next frame into *frame: true for a method frame, false
  // for none yet or one of no interest (connection.blocked is noted here).
  // Throws when the connection is lost or `deadline` (`timeout` from the
  // start) has passed, saying whether the broker blocks the connection.
  bool next_method(SenderClock::time_point deadline, std::chrono::milliseconds timeout, amqp_frame_t* frame);
  // Reads the content of a basic.return or of a late basic.deliver `frame`
  // and drops it; an asynchronous call returned unrouted is noted for
  // next_reply().
  void skip_message(const amqp_frame_t& frame);
  // sender_defer.cpp

  // Publishes a persistent message into the levels of deferred delivery
  // (protocol/deferral.hpp) to `target`, and waits for the broker's
  // confirm as publish_confirmed() does. Checks first, once per node and
  // connection, that the node has a queue (else kUnroutable) and that the
  // levels exist (else kPublish, unsent).
  void publish_deferred(const DeferTarget& target, const DelayPlan& plan, std::string_view body,
                        std::chrono::system_clock::time_point due, const std::string* deadline_header);
  // Passive declare of an exchange or queue on kErrorChannel; false (the
  // channel reopened) when the broker says it does not exist.
  bool exists(bool queue, const std::string& name);
  std::set<std::string> deferral_checked;  // "node NODE", on this connection
  bool confirming = false;
  std::uint64_t published_on_confirm_channel = 0;
  // Takes the next message of `queue` on kErrorChannel, unacked; false when
  // the queue is empty.
  bool get(const std::string& queue, DeadLetter* letter, std::uint64_t* tag);
  void open_error_channel();
  void close_error_channel();

  // sender_events.cpp

  // Builds the event to `topic` with `params_json` (throws kAddress, before
  // anything is sent, for a malformed topic), connects, signs it for the
  // events exchange and publishes it there (publish_mandatory(), with
  // `deadline` when given). With `wait`, waits for the confirm and returns
  // whether a queue took it; without, returns true at once and the confirm
  // is waited for by wait_events(). The one way an event leaves a sender.
  // An event of `topic` with a fresh id, on a connected sender (one the
  // broker blocks fails over as publish does): the part of publish_event()
  // and publish_deferred_event() before signing.
  Event new_event(std::string_view topic, std::string_view params_json);
  // An event deferred to `due` through the levels (publish_deferred), to
  // the events exchange with `topic` as its routing key.
  void publish_deferred_event(std::string_view topic, std::string_view params_json, const DelayPlan& plan,
                              std::chrono::system_clock::time_point due, const std::string* deadline_header);
  bool publish_event(std::string_view topic, std::string_view params_json, const WireDeadline* deadline, bool wait,
                     std::string* id = nullptr);
  // Waits for the confirms of the events published without waiting; returns
  // how many came back unrouted.
  std::size_t wait_events(std::chrono::milliseconds timeout);
  // The tag of the last event published without waiting; 0: none pending.
  std::uint64_t events_pending_tag = 0;
  std::size_t events_pending = 0;
  // Events published without waiting on a connection since lost:
  // wait_events() throws for them.
  std::size_t events_lost = 0;

  // sender_hold.cpp

  // Hands `publish` to options.hold (SenderOptions::hold), to be run at the
  // release (with `now`: at once) on the releasing thread's own Sender with
  // the message id it is given (unless the handler gave its own); true when
  // taken. False without a hold, or when it did not take it: send as any
  // sender does.
  bool hold(std::function<void(Sender&, const std::string& message_id)> publish, bool now);
  // hold() for Sender::send's message to `address`.
  bool hold_send(std::string_view address, std::string_view params_json, const SendOptions& send);
  // options without hold: what held messages are released with.
  std::shared_ptr<const SenderOptions> release_options;

  // sender_signing.cpp

  // The token of `event` to `node`. For a call (`awaits_reply`) signed
  // hmac-sha256-v2, its reply is then checked (signed_calls). A deferred
  // message is signed for when it is `due` (its timestamp, or its date in
  // compat mode), so that its token is fresh when it arrives.
  std::string sign(const Event& event, const std::string& node, bool awaits_reply,
                   std::optional<std::chrono::system_clock::time_point> due = std::nullopt);
  // The key calls are signed with: the caller's key when options.caller is
  // set, else the shared secret.
  const std::string& signing_key() const;
  std::string next_event_id();
  // The message id (protocol/message_id.hpp) that the publishes of the
  // public method under way carry: `given` when set (throws kAddress,
  // before anything is sent, when it cannot be one), else a fresh one.
  // Each public method that sends sets it once, so that its retries carry
  // the same id.
  void use_message_id(const std::string& given);
  // Sets the message_id property of `props` to message_id, when set.
  void stamp_message_id(amqp_basic_properties_t* props) const;
  std::string message_id;
  std::string message_id_prefix;
  std::uint64_t message_ids = 0;
  std::optional<CompatTokens> compat_tokens;
  std::uint64_t next_id = 0;
  std::string prefix = event_id_prefix();
};

}  // namespace sbus
