// The sbus sender: calls services on any node of the bus as
// NODE.CATEGORY.SERVICE, sends fire-and-forget messages, and publishes
// events to topics.
//
// A Sender owns one AMQP connection, to the first broker of its list that
// accepts, and one reply consumer on it (RabbitMQ's direct reply-to), so any
// number of calls can be in flight on it. It is not thread-safe: use one
// Sender per thread. It speaks the py-servicebus wire protocol, so it calls
// py-servicebus agents as well as sbusd.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sbus/export.hpp"

namespace sbus {

struct SenderOptions {
  // AMQP URIs, tried in order: amqp://user:pass@host:port/vhost
  std::vector<std::string> brokers;
  std::string exchange = "py-servicebus";
  // The shared secret the agents check the token against.
  std::string secret;
  // How calls are signed: "compat" (py-servicebus's daily token),
  // "hmac-sha256" (per call: timestamp, nonce and HMAC of the whole event;
  // cannot be replayed) or "hmac-sha256-v2" (also bound to the node called,
  // and the replies must be signed: a reply that fails the check is dropped
  // and counted, see dropped_replies(), and the call waits on for the real
  // one; an unsigned refusal before authentication, such as invalid_token,
  // is taken only as that error). See docs/security.md.
  std::string token = "compat";
  // A caller identity of the agents' `callers` (docs/security.md#callers)
  // and its key: when `caller` is set, calls and messages are signed as it
  // with `caller_key` in hmac-sha256-v2 (whatever `token` says), and the
  // replies must be signed with the same key. `secret` is then needed only
  // for the error queue (errors(), requeue_errors()). Empty: the secret.
  std::string caller;
  std::string caller_key;
  std::chrono::milliseconds connect_timeout{3000};
  // For amqps:// brokers: the CA to trust (empty: the system's store), a
  // client certificate and key for mutual TLS, and whether to verify the
  // broker's certificate and host name (only turn it off for tests).
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  bool tls_verify = true;
  // A call whose connection fails (lost, publish refused) is tried again on
  // the next broker this many times. RPCs are not assumed idempotent, so
  // the default is 0: the caller decides. With retry, calls are published
  // with publisher confirms, and a call the broker has not confirmed within
  // a second counts as a failed publish: a clustered broker can drop a
  // publish to a quorum queue whose leader just died.
  int retry = 0;
  // py-servicebus's "smart route": before the first call to a node, PING it
  // through each broker in turn and use the first broker where it answers.
  bool smart_route = false;
  // The deadline that calls through this sender must not outlive, if any:
  // each call waits at most until it (less a small margin), or its own
  // timeout when that is shorter. sbusd sets it on a service's sender
  // (ServiceContext::sender()) to the deadline of the call the service is
  // handling, so that the calls it makes inherit the time left. Empty: none.
  // The margin is a tenth of the time left, at most 100 ms; when nothing is
  // left, a call throws kTimeout at once, unsent ("the caller's deadline
  // passed").
  std::function<std::optional<std::chrono::system_clock::time_point>()> inherited_deadline;
  // Whether calls carry their deadline: the header x-sbus-deadline (Unix
  // time in ms when the sender stops waiting) and the AMQP expiration (the
  // timeout in ms), so that an agent does not run a call nobody waits for
  // any more (docs/reliability.md, "Deadlines"). Turn it off only to measure
  // what it costs, or for agents that choke on either (py-servicebus
  // ignores both).
  bool send_deadline = true;
  // Whether calls, messages and events carry a fresh message id when the
  // caller gives none (docs/reliability.md#handled-once). Turn it off only to
  // measure what remembering them costs (bench/handled_bench.cpp).
  bool send_message_id = true;
  // The prefix of the exchanges of deferred delivery (SendOptions::delay),
  // which sbusd declares: its config key delay_exchange.
  std::string delay_exchange = "sbus.delay";
  // The topic exchange events are published to (sbusd's events_exchange),
  // which sbusd declares; a sender only publishes to it.
  std::string events_exchange = "sbus.events";
  // sbusd's, set on a service's sender (ServiceContext::sender() and
  // sender_options()): what holds the messages and events the service sends
  // while it handles a delivery (docs/plugins.md, "What a handler sends").
  // send() and publish() (with or without SendOptions, deferred too, and
  // publish_async) hand it `release`, a function that publishes the message
  // with the AMQP message id it is given, confirmed, and throws SenderError
  // as send() would; it returns true when it took it: held, or with `now`
  // (SendOptions::now) released at once with its id. It returns false when
  // no handler of the service runs on the calling thread: the message is
  // sent as by any sender. Calls are never held. Empty (any sender not made
  // by sbusd): nothing is held.
  using Release = std::function<void(const std::string& message_id)>;
  std::function<bool(Release release, bool now)> hold;
};

// How Sender::send sends one message. Deferred delivery
// (docs/reliability.md, "Deferred delivery"): with `delay` or `at` (not
// both) the message reaches its service no earlier than that, rounded up
// to 10 ms, from 10 ms to 497 days ahead. It waits in the broker, in queues
// that an sbusd declared (delay_exchange), durable and persistent: it
// survives a broker restart and the restart of every sbusd. A delay that is
// not positive, or a time not ahead, or beyond 497 days, throws kAddress
// before anything is sent. The message is signed for when it is due, so
// its token is fresh when it arrives.
//
// Held sends: a service's sender (ServiceContext::sender()) holds what the
// service sends while it handles a call, message or event, and sbusd
// releases it once the handler has returned: published with confirms, and
// only then is the incoming delivery acked (and a call answered). When the
// handler throws, nothing it sent leaves; each retry sends afresh. The
// options are checked when send() is called (a bad address or delay throws
// then); a ttl counts from the release. Each message the handler sends
// (held or `now`) carries a message id derived from the incoming
// delivery's id and its place in the order, unless message_id is set, so
// that a handler run again sends the same ids. See docs/plugins.md, "What
// a handler sends".
struct SendOptions {
  // Dropped, not run, if it still waits this long once due (the header
  // x-sbus-deadline; a deferred message carries no AMQP expiration, which
  // would end its wait early).
  std::optional<std::chrono::milliseconds> ttl;
  std::optional<std::chrono::milliseconds> delay;
  std::optional<std::chrono::system_clock::time_point> at;
  // Sent at once, confirmed, even while a service's handler runs: not held
  // until it returns, and not taken back if it throws (and sent again by
  // each retry, with the same message id). For the rare message that must
  // leave before the handler ends, such as a progress report. Senders that
  // hold nothing ignore it.
  bool now = false;
  // The message's id (the AMQP property message_id): the caller's own
  // idempotency key ("charge order 42"), or empty for a fresh unique one.
  // An sbusd handles an id once per service (docs/reliability.md#handled-once):
  // sent twice, the second is acked unrun. At most 128 bytes of UTF-8 text
  // without control characters, else kAddress before anything is sent.
  std::string message_id;
};

// How Sender::call makes one call.
struct CallOptions {
  // As SendOptions::message_id. A call whose id was handled is answered
  // with the reply it got then, unrun: with retry (SenderOptions::retry)
  // and an id, a call runs once even when its connection died after the
  // service ran. Empty: a fresh unique id, kept across the retries of the
  // call.
  std::string message_id;
};

// The answer of a service. A reply with status="error" (sbusd) or a plain
// py-servicebus error text is still a CallResult; transport failures are
// SenderError.
struct CallResult {
  std::string id;          // the event id of the call
  std::string message;     // the result's JSON text, or the error text
  std::string error_code;  // empty on success
  bool ok() const { return error_code.empty(); }
};

// A message that failed max_retries times, as kept in NODE.error: the
// original body, and headers with x-sbus-error, x-sbus-service,
// x-sbus-attempts besides the original ones.
struct DeadLetter {
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Its message id (SendOptions::message_id), kept when it is requeued;
  // empty: none.
  std::string message_id;
  std::string header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) return value;
    }
    return {};
  }
};

// The reply of a call made with Sender::call_async.
struct AsyncReply {
  std::string id;  // what call_async returned
  CallResult result;
};

// The error_code of an asynchronous call that the broker returned because
// no queue takes it (no such node): see Sender::call_async.
inline constexpr const char* kUnroutableCode = "unroutable";

class SBUS_EXPORT SenderError : public std::runtime_error {
 public:
  // kBlocked: the broker said it is blocked by a resource alarm (memory,
  // disk) while the call or message waited: "broker blocked: REASON". A
  // call sent there may still run once the alarm clears.
  enum class Kind { kAddress, kConnect, kPublish, kUnroutable, kTimeout, kConnectionLost, kProtocol, kBlocked };
  SenderError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

class SBUS_EXPORT Sender {
 public:
  // Does not connect yet: the first call does.
  explicit Sender(SenderOptions options);
  ~Sender();
  Sender(Sender&&) noexcept;
  Sender& operator=(Sender&&) noexcept;

  // Calls `address` (NODE.CATEGORY.SERVICE) with `params_json` (any JSON
  // text) and waits up to `timeout` for the reply. Throws SenderError on a
  // bad address, when no broker accepts, or on timeout. The call carries
  // its deadline (now + timeout, or the inherited one less its margin when
  // that is sooner; see SenderOptions). Throws kUnroutable, within a round
  // trip, when the broker has no queue for the node (the call is published
  // mandatory, and the broker returns it); with several brokers and retry
  // > 0 the next broker is tried first.
  CallResult call(std::string_view address, std::string_view params_json, std::chrono::milliseconds timeout);
  CallResult call(std::string_view address, std::string_view params_json, std::chrono::milliseconds timeout,
                  const CallOptions& options);

  // Pipelining: publishes a call and returns its id at once, without
  // waiting; its reply comes from next_reply(). Any number can be in flight
  // on the one connection. Not retried on another broker: when the
  // connection is lost, the calls in flight are forgotten (next_reply then
  // returns nothing for them) and the next call throws or reconnects.
  // Without `timeout` the call carries no deadline of its own (only the
  // inherited one, if any); with it, it carries now + timeout, as call()
  // does. A call the broker returns because no queue takes it (no such
  // node) comes back from next_reply() as a reply with error_code
  // kUnroutableCode and the message that call() would throw.
  std::string call_async(std::string_view address, std::string_view params_json);
  std::string call_async(std::string_view address, std::string_view params_json, std::chrono::milliseconds timeout);
  // Waits up to `timeout` for the reply of any call in flight; nullopt on
  // timeout or when none is in flight. Throws SenderError when the
  // connection is lost.
  std::optional<AsyncReply> next_reply(std::chrono::milliseconds timeout);
  std::size_t in_flight() const;

  // Publishes a persistent message for a message service, with publisher
  // confirms and the mandatory flag: returns once the broker has confirmed
  // it, throws kUnroutable when no queue takes it (no such node) and
  // kPublish when the broker refuses it. Tried on the next broker on a
  // connection failure (sending is safe to repeat: messages are delivered
  // at least once anyway).
  void send(std::string_view address, std::string_view params_json);
  // The same, for a message that is dropped (not run) if it is still
  // waiting `ttl` from now: it carries the header x-sbus-deadline and the
  // AMQP expiration. Without a ttl a message carries no deadline.
  void send(std::string_view address, std::string_view params_json, std::chrono::milliseconds ttl);
  // The same with SendOptions: deferred with `delay` or `at`. A deferred
  // message is confirmed once it is in the broker's first level; a node
  // without a queue then is refused as above (kUnroutable), and kPublish
  // says when no sbusd declared deferred delivery on the broker.
  void send(std::string_view address, std::string_view params_json, const SendOptions& options);
  // On a service's sender while its handler runs, each of these sends and
  // publishes is held (SendOptions, "Held sends") unless SendOptions::now:
  // it returns at once, publish() returns true (whether anyone is
  // subscribed is known only at the release; with SendOptions::now it
  // says, as usual) and publish_async() returns an empty id that
  // wait_published() does not wait for.

  // Publishes an event to `topic` (dot-separated words of letters, digits,
  // '_' and '-': "orders.created") with `params_json`, persistent, with
  // publisher confirms and the mandatory flag, to the events exchange:
  // every event service subscribed to a matching pattern gets it (one copy
  // per node, or one per group; docs/protocol.md, "Events"). Returns once
  // the broker has confirmed it: true when some queue took it, false when
  // nobody is subscribed (the broker returned it, or no sbusd has declared
  // the events exchange yet): not an error, and nothing is kept. Throws
  // kAddress for a malformed topic (nothing sent), kPublish when the broker
  // refuses it; tried on the next broker on a connection failure, as send().
  bool publish(std::string_view topic, std::string_view params_json);
  // publish() with SendOptions: `delay` or `at` defers the event as send()
  // defers a message (it reaches the subscribers no earlier than due; the
  // levels hold it meanwhile, so whether anyone is subscribed is known only
  // then, and this returns true once the levels have it); `ttl` drops it
  // unhandled if it waits that long once due. A bad delay throws kAddress
  // before anything is sent.
  bool publish(std::string_view topic, std::string_view params_json, const SendOptions& options);
  // Publishes as publish() does without waiting for the confirm; returns
  // the event's id. Any number may be in flight; wait_published() waits for
  // them all.
  std::string publish_async(std::string_view topic, std::string_view params_json);
  // Waits up to `timeout` for the confirms of every event publish_async()
  // published; returns how many of them nobody was subscribed to. Throws
  // kPublish on a nack, kConnectionLost when the connection is lost or the
  // confirms do not come in time (the events then may or may not have
  // been published: publish them again, at least once is the rule).
  std::size_t wait_published(std::chrono::milliseconds timeout);

  // True when `node` answers PING with PONG within `timeout`. Throws
  // kUnroutable at once when the broker has no queue for the node.
  bool ping(std::string_view node, std::chrono::milliseconds timeout);

  // The messages in `node`'s error queue (default NODE.error), left there.
  std::vector<DeadLetter> list_errors(std::string_view node, std::string_view error_queue = {});
  // Moves the messages that are in the error queue now back to `node`,
  // signed again with the secret (throws kAddress without one) when a
  // worker with that secret sealed them (x-sbus-seal: not those it refused
  // for their token, nor what others put there), which go back with their
  // original token; those whose body the worker dropped (x-sbus-body:
  // dropped) stay; confirmed,
  // one by one: a message leaves the error queue only once the broker has
  // it back. A message that fails again meanwhile is not moved twice.
  // Returns how many were moved.
  std::size_t requeue_errors(std::string_view node, std::string_view error_queue = {});

  // The broker URI (password hidden) the sender is connected to, or "".
  std::string connected_broker() const;

  // Replies dropped so far because they failed the hmac-sha256-v2 check
  // (forged, or signed for another call).
  std::uint64_t dropped_replies() const;

 private:
  void send_message(std::string_view address, std::string_view params_json, const SendOptions& options);
  std::string call_async_with(std::string_view address, std::string_view params_json,
                              std::optional<std::chrono::milliseconds> timeout);
  // publish() with the message id already chosen (Impl::use_message_id).
  bool publish_with_id(std::string_view topic, std::string_view params_json);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sbus
