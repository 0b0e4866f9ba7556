// Whether a delivery's token lets it in: the modes the config accepts
// (compat, hmac-sha256, hmac-sha256-v2), the clock skew, and the replay
// cache; and the stamp of a message coming back from the hold queue.
//
// Part of Admission: used on the thread that reads the delivery, with the
// broker session's lock held. Not thread-safe. The messages it returns name
// what failed, never the secret or the expected value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/replay_cache.hpp"
#include "config/config.hpp"
#include "protocol/token.hpp"
#include "protocol/wire_codec.hpp"

namespace sbus {

// Who signed a call that passed the check (docs/security.md#callers).
struct CallerIdentity {
  std::string caller{kSharedCaller};
  // 0: the shared secret (kSharedCaller); i + 1: the config's callers[i].
  std::size_t index = 0;
  // The key that signed it, which its replies are signed with; null: the
  // shared secret. Points into the Config, which outlives the worker's
  // deliveries.
  const std::string* key = nullptr;
};

class TokenCheck {
 public:
  // `replay` may be null: hmac calls are then refused.
  TokenCheck(const Config& config, ReplayCache* replay);

  // True when `event`'s token is valid; else false with an error code and
  // its message. An hmac-sha256-v2 call's nonce goes to *reply_nonce (its
  // replies are signed for it). `redelivery`: the delivery was started or
  // finished here before (its nonce was seen by this very delivery), so a
  // nonce seen before is no replay. `who` (optional) receives who signed:
  // an hmac-sha256-v2 token naming a caller is checked against that
  // caller's keys (any of them, during a rotation); an unknown caller is an
  // invalid token. `signed_for`: what an hmac-sha256-v2 signature must name
  // in place of a node; empty: this node. An event is signed for the events
  // exchange (protocol.md, "Events").
  bool check(const Event& event, bool redelivery, const char** code, std::string* message, std::string* reply_nonce,
             CallerIdentity* who = nullptr, std::string_view signed_for = {});

  // A message this node held (overflow) and the hold queue gave back: its
  // token was checked when it first came, and an hmac-sha256 one would now
  // be refused as a replay. The stamp (header x-sbus-hold) proves it; each
  // is let in once.
  bool back_from_hold(std::string_view body, const std::vector<std::pair<std::string, std::string>>& headers);
  // Who sent a message back from the hold queue: its token's caller, which
  // was checked when it first came (the stamp covers the body, token and
  // all). False (invalid_token) for a caller no longer configured.
  bool held_caller(const Event& event, CallerIdentity* who, const char** code, std::string* message) const;
  // A call admitted here and given back to the broker unstarted (a drain):
  // its hmac nonce is let in again, so that its redelivery, to this worker
  // or the one replacing it, is not refused as a replay.
  void forget(std::string_view token);

 private:
  bool check_hmac_v2(const Event& event, bool redelivery, const char** code, std::string* message,
                     std::string* reply_nonce, CallerIdentity* who, std::string_view signed_for);
  // The key of `token`'s caller that signed `call`; null (with the code)
  // when none did.
  const std::string* signing_key(const HmacV2Token& token, const SignedCall& call, CallerIdentity* who,
                                 const char** code, std::string* message) const;
  bool remember_nonce(const std::string& nonce, std::int64_t timestamp, std::int64_t now, bool redelivery,
                      const char** code, std::string* message);

  const Config& config_;
  CompatTokens compat_tokens_;
  ReplayCache* replay_;
  std::unordered_map<std::string, std::size_t> callers_;  // id -> index in config_.callers
};

}  // namespace sbus
