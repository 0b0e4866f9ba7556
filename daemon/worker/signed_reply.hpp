// The one place a worker encodes a reply, on whichever thread sends it: the
// reading thread's error replies and own answers, a service thread's
// result. A reply to an hmac-sha256-v2 call is signed for the call's nonce,
// as senders in that mode require; every other reply goes unsigned.
#pragma once

#include <string>
#include <string_view>

#include "protocol/wire_codec.hpp"
#include "worker/envelope.hpp"

namespace sbus {

// `reply_nonce`: Envelope::reply_nonce (empty: unsigned). Sets
// reply->signature and returns the wire text.
std::string encode_signed_reply(Reply* reply, std::string_view reply_nonce, std::string_view secret,
                                std::string_view node);

// The same for the reply to `envelope`: signed with its caller's key, or
// `secret` when the shared secret signed the call.
inline std::string encode_signed_reply(Reply* reply, const Envelope& envelope, std::string_view secret,
                                       std::string_view node) {
  return encode_signed_reply(reply, envelope.reply_nonce,
                             envelope.reply_key != nullptr ? std::string_view(*envelope.reply_key) : secret, node);
}

}  // namespace sbus
