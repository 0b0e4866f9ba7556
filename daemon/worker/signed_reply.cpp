#include "worker/signed_reply.hpp"

#include "protocol/token.hpp"

namespace sbus {

std::string encode_signed_reply(Reply* reply, std::string_view reply_nonce, std::string_view secret,
                                std::string_view node) {
  if (!reply_nonce.empty()) reply->signature = hmac_v2_reply_signature(secret, node, reply_nonce, *reply);
  return encode_reply(*reply);
}

}  // namespace sbus
