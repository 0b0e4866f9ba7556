// sbus::Sender's public methods (plugin-sdk/include/sbus/sender.hpp); what
// they share is Sender::Impl (sender_impl.hpp).
#include <sbus/sender.hpp>

#include <algorithm>
#include <memory>
#include <tuple>

#include "base/topic.hpp"
#include "client/call_budget.hpp"
#include "client/sender_impl.hpp"
#include "protocol/deadline.hpp"
#include "protocol/error_seal.hpp"
#include "protocol/event_wire.hpp"

namespace sbus {
namespace {

struct Address {
  std::string node;
  std::string category;
  std::string service;
};

Address parse_address(std::string_view address) {
  Address parsed;
  std::size_t first = address.find('.');
  std::size_t second = first == std::string_view::npos ? first : address.find('.', first + 1);
  if (second == std::string_view::npos || address.find('.', second + 1) != std::string_view::npos || first == 0 ||
      second == first + 1 || second + 1 == address.size()) {
    throw SenderError(SenderError::Kind::kAddress, "'" + std::string(address) + "' is not NODE.CATEGORY.SERVICE");
  }
  parsed.node = address.substr(0, first);
  parsed.category = address.substr(first + 1, second - first - 1);
  parsed.service = address.substr(second + 1);
  return parsed;
}

Event event_to(const Address& target, std::string_view params_json) {
  Event event;
  event.category = target.category;
  event.service = target.service;
  event.params = params_json;
  return event;
}

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

// The time a call may wait: its own timeout, or what its inherited deadline
// leaves when that is sooner. Throws kTimeout, before anything is sent, when
// the inherited deadline leaves nothing.
std::chrono::milliseconds budget_for(const SenderOptions& options, std::string_view address,
                                     std::chrono::milliseconds timeout, std::chrono::system_clock::time_point now) {
  const auto inherited = options.inherited_deadline ? options.inherited_deadline() : std::nullopt;
  const std::optional<std::chrono::milliseconds> budget = call_budget(timeout, inherited, now);
  if (!budget) {
    throw SenderError(SenderError::Kind::kTimeout,
                      "the caller's deadline passed: no time left to call " + std::string(address) + " (not sent)");
  }
  return *budget;
}

// When a deferred message is due, if it is one; throws kAddress, before
// anything is sent, for a delay or time that deferral cannot take.
std::optional<std::chrono::system_clock::time_point> due_of(const SendOptions& options,
                                                            std::chrono::system_clock::time_point now) {
  std::string error;
  if (options.delay) {
    if (!plan_delay(*options.delay, &error)) throw SenderError(SenderError::Kind::kAddress, error);
    return now + *options.delay;
  }
  if (options.at) {
    if (!delay_until(*options.at, now, &error)) throw SenderError(SenderError::Kind::kAddress, error);
    return *options.at;
  }
  return std::nullopt;
}

}  // namespace

Sender::Sender(SenderOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
}
Sender::~Sender() = default;
Sender::Sender(Sender&&) noexcept = default;
Sender& Sender::operator=(Sender&&) noexcept = default;

CallResult Sender::call(std::string_view address, std::string_view params_json, std::chrono::milliseconds timeout) {
  return call(address, params_json, timeout, CallOptions{});
}

CallResult Sender::call(std::string_view address, std::string_view params_json, std::chrono::milliseconds timeout,
                        const CallOptions& options) {
  const Address target = parse_address(address);
  impl_->use_message_id(options.message_id);
  const auto wall_now = std::chrono::system_clock::now();
  const std::chrono::milliseconds budget = budget_for(impl_->options, address, timeout, wall_now);
  const auto deadline = SenderClock::now() + budget;
  const auto wall_deadline = wall_now + budget;
  Event event = event_to(target, params_json);
  // A node with no queue on this broker may have one on the next: worth
  // trying with retry, or with smart route (which chose this broker before
  // the node's queue went, or for another node).
  const int brokers = static_cast<int>(impl_->options.brokers.size());
  const int unroutable_tries =
      brokers > 1 ? std::max(impl_->options.retry, impl_->options.smart_route ? brokers - 1 : 0) : 0;
  for (int attempt = 0;; ++attempt) {
    // A call may go to another broker when it is blocked only if the call
    // is safe to run twice (retry): the blocked one may still run it once
    // its alarm clears.
    const FailOverOnBlock fail_over(&impl_->fail_over_on_block,
                                    attempt < impl_->options.retry && impl_->options.brokers.size() > 1);
    try {
      return impl_->call_once(target.node, event, address, deadline, budget, wall_deadline);
    } catch (const SenderError& e) {
      impl_->signed_calls.erase(event.id);
      if (e.kind() == SenderError::Kind::kUnroutable) {
        if (attempt >= unroutable_tries || SenderClock::now() >= deadline) throw;
        impl_->give_up_connection();
        continue;
      }
      const bool retryable = e.kind() == SenderError::Kind::kConnectionLost ||
                             e.kind() == SenderError::Kind::kConnect || e.kind() == SenderError::Kind::kBlocked;
      if (!retryable || attempt >= impl_->options.retry || SenderClock::now() >= deadline) throw;
    }
  }
}

void Sender::send(std::string_view address, std::string_view params_json) {
  send_message(address, params_json, SendOptions{});
}

void Sender::send(std::string_view address, std::string_view params_json, std::chrono::milliseconds ttl) {
  SendOptions options;
  options.ttl = ttl;
  send(address, params_json, options);
}

void Sender::send(std::string_view address, std::string_view params_json, const SendOptions& options) {
  if (options.ttl && options.ttl->count() <= 0) {
    throw SenderError(SenderError::Kind::kAddress, "a message's ttl must be positive");
  }
  if (options.delay && options.at) {
    throw SenderError(SenderError::Kind::kAddress, "give a message a delay or a time to arrive at, not both");
  }
  send_message(address, params_json, options);
}

void Sender::send_message(std::string_view address, std::string_view params_json, const SendOptions& options) {
  const Address target = parse_address(address);
  impl_->use_message_id(options.message_id);
  const auto wall_now = std::chrono::system_clock::now();
  const std::optional<std::chrono::system_clock::time_point> due = due_of(options, wall_now);
  const std::chrono::milliseconds ttl = options.ttl.value_or(std::chrono::milliseconds(0));
  // A deadline counts from when the message is due.
  const auto wall_expires = due.value_or(wall_now) + ttl;
  if (impl_->hold_send(address, params_json, options)) return;
  Event event = event_to(target, params_json);
  // A lost connection is always worth another broker here: a message is
  // delivered at least once whatever we do.
  const int tries = std::max<int>(1, static_cast<int>(impl_->options.brokers.size())) + impl_->options.retry;
  for (int attempt = 0;; ++attempt) {
    // A blocked broker's notice sends the message to the next one at once.
    const FailOverOnBlock fail_over(&impl_->fail_over_on_block,
                                    attempt + 1 < tries && impl_->options.brokers.size() > 1);
    try {
      impl_->connect();
      if (impl_->fail_over_on_block && impl_->connection.blocked()) {
        impl_->lost(impl_->blocked_text(), SenderError::Kind::kBlocked);
      }
      event.id = impl_->next_event_id();
      // Counted again on each attempt: the levels count from when the
      // broker has the message. A time passed meanwhile sends it at once.
      std::optional<DelayPlan> plan;
      std::string passed;
      if (due) {
        plan =
            plan_delay(std::chrono::ceil<std::chrono::milliseconds>(*due - std::chrono::system_clock::now()), &passed);
      }
      if (plan) {
        event.token = impl_->sign(event, target.node, false, due);
        const std::string deadline = deadline_header_value(wall_expires);
        impl_->publish_deferred(DeferTarget{DeferTarget::Kind::kNode, target.node}, *plan, encode_event(event), *due,
                                options.ttl ? &deadline : nullptr);
        return;
      }
      event.token = impl_->sign(event, target.node, false);
      std::optional<WireDeadline> stamp;
      if (options.ttl) {
        stamp = WireDeadline{deadline_header_value(wall_expires),
                             expiration_for(std::chrono::ceil<std::chrono::milliseconds>(
                                 wall_expires - std::chrono::system_clock::now()))};
      }
      impl_->publish_confirmed(target.node, encode_event(event), std::chrono::milliseconds(10000),
                               stamp ? &*stamp : nullptr);
      return;
    } catch (const SenderError& e) {
      const bool retryable = e.kind() == SenderError::Kind::kConnectionLost || e.kind() == SenderError::Kind::kBlocked;
      if (!retryable || attempt + 1 >= tries) throw;
    }
  }
}

bool Sender::publish(std::string_view topic, std::string_view params_json) {
  if (const std::string problem = topic_problem(topic); !problem.empty()) {
    throw SenderError(SenderError::Kind::kAddress, problem);
  }
  if (impl_->hold(
          [topic = std::string(topic), params = std::string(params_json)](Sender& sender, const std::string& id) {
            SendOptions with_id;
            with_id.message_id = id;
            sender.publish(topic, params, with_id);
          },
          false)) {
    return true;
  }
  impl_->use_message_id({});
  return publish_with_id(topic, params_json);
}

bool Sender::publish_with_id(std::string_view topic, std::string_view params_json) {
  // A lost connection is worth another broker, as for send().
  const int tries = std::max<int>(1, static_cast<int>(impl_->options.brokers.size())) + impl_->options.retry;
  for (int attempt = 0;; ++attempt) {
    const FailOverOnBlock fail_over(&impl_->fail_over_on_block,
                                    attempt + 1 < tries && impl_->options.brokers.size() > 1);
    try {
      return impl_->publish_event(topic, params_json, nullptr, true);
    } catch (const SenderError& e) {
      const bool retryable = e.kind() == SenderError::Kind::kConnectionLost || e.kind() == SenderError::Kind::kBlocked;
      if (!retryable || attempt + 1 >= tries) throw;
    }
  }
}

bool Sender::publish(std::string_view topic, std::string_view params_json, const SendOptions& options) {
  if (const std::string problem = topic_problem(topic); !problem.empty()) {
    throw SenderError(SenderError::Kind::kAddress, problem);
  }
  const auto wall_now = std::chrono::system_clock::now();
  const std::optional<std::chrono::system_clock::time_point> due = due_of(options, wall_now);
  // Held: true; released at once (`now`): whether anyone was subscribed.
  auto subscribed = std::make_shared<bool>(true);
  if (impl_->hold(
          [topic = std::string(topic), params = std::string(params_json), options, subscribed](Sender& sender,
                                                                                               const std::string& id) {
            SendOptions with_id = options;
            if (with_id.message_id.empty()) with_id.message_id = id;
            *subscribed = sender.publish(topic, params, with_id);
          },
          options.now)) {
    return *subscribed;
  }
  impl_->use_message_id(options.message_id);
  if (!due && !options.ttl) return publish_with_id(topic, params_json);
  const auto wall_expires = due.value_or(wall_now) + options.ttl.value_or(std::chrono::milliseconds(0));
  const std::string deadline = deadline_header_value(wall_expires);
  const int tries = std::max<int>(1, static_cast<int>(impl_->options.brokers.size())) + impl_->options.retry;
  for (int attempt = 0;; ++attempt) {
    const FailOverOnBlock fail_over(&impl_->fail_over_on_block,
                                    attempt + 1 < tries && impl_->options.brokers.size() > 1);
    try {
      std::string passed;
      const std::optional<DelayPlan> plan =
          due ? plan_delay(std::chrono::ceil<std::chrono::milliseconds>(*due - std::chrono::system_clock::now()),
                           &passed)
              : std::nullopt;
      if (!plan) {
        // No delay (or its time passed meanwhile): published now.
        const WireDeadline stamp{deadline, expiration_for(std::chrono::ceil<std::chrono::milliseconds>(
                                               wall_expires - std::chrono::system_clock::now()))};
        return impl_->publish_event(topic, params_json, options.ttl ? &stamp : nullptr, true);
      }
      impl_->publish_deferred_event(topic, params_json, *plan, *due, options.ttl ? &deadline : nullptr);
      return true;
    } catch (const SenderError& e) {
      const bool retryable = e.kind() == SenderError::Kind::kConnectionLost || e.kind() == SenderError::Kind::kBlocked;
      if (!retryable || attempt + 1 >= tries) throw;
    }
  }
}

std::string Sender::publish_async(std::string_view topic, std::string_view params_json) {
  if (const std::string problem = topic_problem(topic); !problem.empty()) {
    throw SenderError(SenderError::Kind::kAddress, problem);
  }
  if (impl_->hold(
          [topic = std::string(topic), params = std::string(params_json)](Sender& sender, const std::string& id) {
            SendOptions with_id;
            with_id.message_id = id;
            sender.publish(topic, params, with_id);
          },
          false)) {
    return {};
  }
  impl_->use_message_id({});
  std::string id;
  impl_->publish_event(topic, params_json, nullptr, false, &id);
  return id;
}

std::size_t Sender::wait_published(std::chrono::milliseconds timeout) {
  return impl_->wait_events(timeout);
}

bool Sender::ping(std::string_view node, std::chrono::milliseconds timeout) {
  impl_->connect();
  return impl_->ping_here(std::string(node), timeout);
}

std::string Sender::call_async(std::string_view address, std::string_view params_json) {
  return call_async_with(address, params_json, std::nullopt);
}

std::string Sender::call_async(std::string_view address, std::string_view params_json,
                               std::chrono::milliseconds timeout) {
  return call_async_with(address, params_json, timeout);
}

std::string Sender::call_async_with(std::string_view address, std::string_view params_json,
                                    std::optional<std::chrono::milliseconds> timeout) {
  const Address target = parse_address(address);
  std::optional<WireDeadline> stamp;
  if (impl_->options.send_deadline && (timeout || impl_->options.inherited_deadline)) {
    const auto wall_now = std::chrono::system_clock::now();
    const auto budget =
        budget_for(impl_->options, address, timeout.value_or(std::chrono::milliseconds::max() / 2), wall_now);
    // An inherited deadline may be absent after all: then none.
    if (budget < std::chrono::milliseconds::max() / 2) {
      stamp = WireDeadline{deadline_header_value(wall_now + budget), expiration_for(budget)};
    }
  }
  impl_->connect(target.node);
  impl_->consume_replies();
  Event event = event_to(target, params_json);
  event.id = impl_->next_event_id();
  event.token = impl_->sign(event, target.node, true);
  impl_->use_message_id({});
  impl_->publish_call(target.node, encode_event(event), event.id, stamp ? &*stamp : nullptr);
  impl_->async_pending.insert(event.id);
  return event.id;
}

std::optional<AsyncReply> Sender::next_reply(std::chrono::milliseconds timeout) {
  std::string id;
  std::string body;
  if (!impl_->async_returned.empty()) {
    std::tie(id, body) = std::move(impl_->async_returned.front());
    impl_->async_returned.pop_front();
    return AsyncReply{id, CallResult{id, std::move(body), kUnroutableCode}};
  }
  if (!impl_->async_ready.empty()) {
    std::tie(id, body) = std::move(impl_->async_ready.front());
    impl_->async_ready.pop_front();
  } else {
    if (impl_->async_pending.empty() || !impl_->connection) return std::nullopt;
    const auto deadline = SenderClock::now() + timeout;
    bool returned = false;
    for (;;) {
      if (!impl_->receive(deadline, &id, &body, &returned)) return std::nullopt;
      if (returned) {
        if (impl_->async_pending.erase(id) == 0) continue;
        impl_->signed_calls.erase(id);
        return AsyncReply{id, CallResult{id, std::move(body), kUnroutableCode}};
      }
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
  return AsyncReply{id, CallResult{std::move(reply.id), std::move(reply.message), std::move(reply.error_code)}};
}

std::size_t Sender::in_flight() const {
  return impl_->async_pending.size() + impl_->async_ready.size() + impl_->async_returned.size();
}

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
  amqp_queue_declare_ok_t* declared =
      amqp_queue_declare(impl_->connection.get(), Impl::kErrorChannel, to_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
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
      // A requeued event comes back to the node queue as its service's
      // event (x-sbus-event), signed as events are.
      const std::string event_service = letter.header(std::string(kEventServiceHeader));
      Event event;
      DecodeFailure failure;
      if (error_seal_valid(letter.header("x-sbus-seal"), impl_->options.secret, letter.header("x-sbus-node"),
                           letter.body) &&
          decode_event(letter.body, &event, &failure)) {
        event.token =
            impl_->sign(event, event_service.empty() ? std::string(node) : impl_->options.events_exchange, false);
        letter.body = encode_event(event);
      }
      // The id it came with, so that a store that saw it handled knows it.
      impl_->message_id = letter.message_id;
      impl_->publish_confirmed(std::string(node), letter.body, std::chrono::milliseconds(10000), nullptr,
                               event_service);
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

std::string Sender::connected_broker() const {
  return impl_->connected;
}

std::uint64_t Sender::dropped_replies() const {
  return impl_->dropped_replies;
}

}  // namespace sbus
