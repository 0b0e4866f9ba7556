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
#include <utility>
#include <vector>

#include "base/replay_cache.hpp"
#include "config/config.hpp"
#include "protocol/token.hpp"
#include "protocol/wire_codec.hpp"

namespace sbus {

class TokenCheck {
 public:
  // `replay` may be null: hmac calls are then refused.
  TokenCheck(const Config& config, ReplayCache* replay);

  // True when `event`'s token is valid; else false with an error code and
  // its message. An hmac-sha256-v2 call's nonce goes to *reply_nonce (its
  // replies are signed for it). `redelivery`: the delivery was started or
  // finished here before (its nonce was seen by this very delivery), so a
  // nonce seen before is no replay.
  // `signed_for`: what an hmac-sha256-v2 signature must name in place of a
  // node; empty: this node. An event is signed for the events exchange
  // (protocol.md, "Events").
  bool check(const Event& event, bool redelivery, const char** code, std::string* message, std::string* reply_nonce,
             std::string_view signed_for = {});

  // A message this node held (overflow) and the hold queue gave back: its
  // token was checked when it first came, and an hmac-sha256 one would now
  // be refused as a replay. The stamp (header x-sbus-hold) proves it; each
  // is let in once.
  bool back_from_hold(std::string_view body, const std::vector<std::pair<std::string, std::string>>& headers);

 private:
  bool check_hmac_v2(const Event& event, bool redelivery, const char** code, std::string* message,
                     std::string* reply_nonce, std::string_view signed_for);
  bool remember_nonce(const std::string& nonce, std::int64_t timestamp, std::int64_t now, bool redelivery,
                      const char** code, std::string* message);

  const Config& config_;
  CompatTokens compat_tokens_;
  ReplayCache* replay_;
};

}  // namespace sbus
