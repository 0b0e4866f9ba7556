// The py-servicebus token ("compat" mode): hex(SHA-1(SECRET " - " DATE)),
// DATE the sender's local date as YYYY-MM-DD. The receiver accepts the
// tokens of yesterday, today and tomorrow by its own local date.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/caller_id.hpp"

namespace sbus {

std::string compat_token(std::string_view secret, std::string_view date);

// The local date of `when` shifted by `day_offset` days, as YYYY-MM-DD.
std::string local_date(std::chrono::system_clock::time_point when, int day_offset = 0);

// Constant-time check of `token` against the tokens of the three days
// around `now`.
bool compat_token_valid(std::string_view secret, std::string_view token, std::chrono::system_clock::time_point now);

// compat_token_valid and the sender's token without three SHA-1s per call:
// the tokens of the three days around now, worked out again once a minute
// (so a new day is seen within a minute of midnight). One per thread.
class CompatTokens {
 public:
  explicit CompatTokens(std::string secret);
  bool valid(std::string_view token, std::chrono::system_clock::time_point now);
  const std::string& today(std::chrono::system_clock::time_point now);

 private:
  static constexpr std::chrono::seconds kRefresh{60};
  void refresh(std::chrono::system_clock::time_point now);

  std::string secret_;
  std::array<std::string, 3> tokens_;  // yesterday, today, tomorrow
  std::chrono::system_clock::time_point next_refresh_{};
};

}  // namespace sbus

namespace sbus {

// The hmac-sha256 token: the sender signs the canonical event (id,
// category, service, params, timestamp, nonce; each field length-prefixed so
// that no two events share a text) with HMAC-SHA256 of the shared secret.
// On the wire it travels in <token> as
//   hmac-sha256:TIMESTAMP:NONCE:SIGNATURE
// (unix seconds, 32 hex digits, 64 hex digits), so that a py-servicebus
// agent simply refuses it as a bad token.
inline constexpr std::string_view kHmacPrefix = "hmac-sha256:";

struct HmacToken {
  std::int64_t timestamp = 0;
  std::string nonce;
  std::string signature;  // hex
};

// HMAC-SHA256 (RFC 2104) of `data` under `key`, as 64 lowercase hex digits.
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

std::string hmac_signature(std::string_view secret, std::string_view id, std::string_view category,
                           std::string_view service, std::string_view params, std::int64_t timestamp,
                           std::string_view nonce);

// A token for a new call: at `timestamp` (-1: now; a deferred message's is
// when it is due), a random nonce, its signature.
std::string make_hmac_token(std::string_view secret, std::string_view id, std::string_view category,
                            std::string_view service, std::string_view params, std::int64_t timestamp = -1);

// Splits a token in hmac-sha256 form; false when it is not well-formed.
bool parse_hmac_token(std::string_view token, HmacToken* parsed);

// Constant-time comparison of two texts (of any lengths).
bool equal_constant_time(std::string_view a, std::string_view b);

}  // namespace sbus

namespace sbus {

struct Reply;

// The hmac-sha256-v2 token (docs/security.md has the exact format): as
// hmac-sha256, and the signature also covers the node the call is addressed
// to and a caller identity (empty: signed with the shared secret; else one
// of the node's `callers`, signed with that caller's key); the agent signs
// its reply to such a call with the same key, bound to the call's nonce.
// In <token>:
//   hmac-sha256-v2:TIMESTAMP:NONCE:CALLER:SIGNATURE
// and on the reply, the attribute signature="hmac-sha256-v2:SIGNATURE" of
// <response>.
inline constexpr std::string_view kHmacV2Mode = "hmac-sha256-v2";
inline constexpr std::string_view kHmacV2Prefix = "hmac-sha256-v2:";

struct HmacV2Token {
  std::int64_t timestamp = 0;
  std::string nonce;   // 32 hex digits
  std::string caller;  // empty: signed with the shared secret
  std::string signature;
};

// What a call's signature covers, each field length-prefixed.
struct SignedCall {
  std::string_view node;
  std::string_view id;
  std::string_view category;
  std::string_view service;
  std::string_view params;
  std::string_view caller;
};

std::string hmac_v2_call_signature(std::string_view secret, const SignedCall& call, std::int64_t timestamp,
                                   std::string_view nonce);

// A token for a new call with a fresh random nonce, at `timestamp` (-1:
// now); `nonce` (optional) receives the nonce, to check the reply with.
std::string make_hmac_v2_token(std::string_view secret, const SignedCall& call, std::string* nonce = nullptr,
                               std::int64_t timestamp = -1);

// Splits a token in hmac-sha256-v2 form; false when it is not well-formed.
bool parse_hmac_v2_token(std::string_view token, HmacV2Token* parsed);

// The value of <response signature="..."> for `reply` (its id, error code
// and message) to the call with `nonce` addressed to `node`.
std::string hmac_v2_reply_signature(std::string_view secret, std::string_view node, std::string_view nonce,
                                    const Reply& reply);

// Whether a sender in hmac-sha256-v2 mode takes `reply` (decoded) as the
// answer to its call with `nonce` to `node`: a reply whose signature
// matches, or an unsigned refusal that no agent can sign because it came
// before the call was authenticated (is_unauthenticated_refusal), taken
// only as that error. Anything else is dropped by the sender.
bool hmac_v2_reply_trusted(std::string_view secret, std::string_view node, std::string_view nonce, const Reply& reply);

// Error codes an agent answers before (or instead of) authenticating a
// call, so unsigned: invalid_token, invalid_signature, token_expired,
// replayed, and message_too_large (refused unread).
bool is_unauthenticated_refusal(std::string_view error_code);

}  // namespace sbus
