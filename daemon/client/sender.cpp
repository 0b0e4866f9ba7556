// sbus::Sender's public methods (plugin-sdk/include/sbus/sender.hpp); what
// they share is Sender::Impl (sender_impl.hpp).
#include <sbus/sender.hpp>

#include <algorithm>
#include <tuple>

#include "client/sender_impl.hpp"
#include "protocol/error_seal.hpp"

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

}  // namespace

Sender::Sender(SenderOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  wire_codec_init();
}
Sender::~Sender() = default;
Sender::Sender(Sender&&) noexcept = default;
Sender& Sender::operator=(Sender&&) noexcept = default;

CallResult Sender::call(std::string_view address, std::string_view params_json, std::chrono::milliseconds timeout) {
  const Address target = parse_address(address);
  const auto deadline = SenderClock::now() + timeout;
  Event event = event_to(target, params_json);
  for (int attempt = 0;; ++attempt) {
    // A call may go to another broker when it is blocked only if the call
    // is safe to run twice (retry): the blocked one may still run it once
    // its alarm clears.
    const FailOverOnBlock fail_over(&impl_->fail_over_on_block,
                                    attempt < impl_->options.retry && impl_->options.brokers.size() > 1);
    try {
      return impl_->call_once(target.node, event, address, deadline, timeout);
    } catch (const SenderError& e) {
      impl_->signed_calls.erase(event.id);
      const bool retryable = e.kind() == SenderError::Kind::kConnectionLost ||
                             e.kind() == SenderError::Kind::kConnect || e.kind() == SenderError::Kind::kBlocked;
      if (!retryable || attempt >= impl_->options.retry || SenderClock::now() >= deadline) throw;
    }
  }
}

void Sender::send(std::string_view address, std::string_view params_json) {
  const Address target = parse_address(address);
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
      event.token = impl_->sign(event, target.node, false);
      impl_->publish_confirmed(target.node, encode_event(event), std::chrono::milliseconds(10000));
      return;
    } catch (const SenderError& e) {
      const bool retryable = e.kind() == SenderError::Kind::kConnectionLost || e.kind() == SenderError::Kind::kBlocked;
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
  Event event = event_to(target, params_json);
  event.id = impl_->next_event_id();
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
    const auto deadline = SenderClock::now() + timeout;
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

std::size_t Sender::in_flight() const {
  return impl_->async_pending.size() + impl_->async_ready.size();
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

std::string Sender::connected_broker() const {
  return impl_->connected;
}

std::uint64_t Sender::dropped_replies() const {
  return impl_->dropped_replies;
}

}  // namespace sbus
