// Sender::Impl: the token of each call and message, and event ids.
#include <unistd.h>

#include "client/sender_impl.hpp"
#include "protocol/message_id.hpp"

namespace sbus {

std::string event_id_prefix() {
  char host[128] = {};
  gethostname(host, sizeof(host) - 1);
  return std::string(host) + "-" + std::to_string(getpid()) + "-";
}

std::string Sender::Impl::sign(const Event& event, const std::string& node, bool awaits_reply,
                               std::optional<std::chrono::system_clock::time_point> due) {
  const std::int64_t timestamp =
      due ? std::chrono::duration_cast<std::chrono::seconds>(due->time_since_epoch()).count() : -1;
  if (options.token == kHmacV2Mode || !options.caller.empty()) {
    std::string nonce;
    const SignedCall call{node, event.id, event.category, event.service, event.params, options.caller};
    std::string token = make_hmac_v2_token(signing_key(), call, &nonce, timestamp);
    if (awaits_reply) signed_calls[event.id] = SignedCallWait{node, std::move(nonce)};
    return token;
  }
  if (options.token == "hmac-sha256") {
    return make_hmac_token(options.secret, event.id, event.category, event.service, event.params, timestamp);
  }
  if (due) return compat_token(options.secret, local_date(*due));
  if (!compat_tokens) compat_tokens.emplace(options.secret);
  return compat_tokens->today(std::chrono::system_clock::now());
}

const std::string& Sender::Impl::signing_key() const {
  return options.caller.empty() ? options.secret : options.caller_key;
}

void Sender::Impl::use_message_id(const std::string& given) {
  if (!given.empty()) {
    if (const std::string problem = message_id_problem(given); !problem.empty()) {
      throw SenderError(SenderError::Kind::kAddress, problem + "; not sent");
    }
    message_id = given;
    return;
  }
  if (!options.send_message_id) {
    message_id.clear();
    return;
  }
  if (message_id_prefix.empty()) message_id_prefix = fresh_message_id_prefix();
  message_id = message_id_prefix + std::to_string(++message_ids);
}

void Sender::Impl::stamp_message_id(amqp_basic_properties_t* props) const {
  if (message_id.empty()) return;
  props->_flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
  props->message_id = to_bytes(message_id);
}

std::string Sender::Impl::next_event_id() {
  return prefix + std::to_string(++next_id);
}

}  // namespace sbus
