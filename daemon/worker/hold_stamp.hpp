// The stamp a worker puts on a message it moves to the hold queue (header
// x-sbus-hold), so that the message is let in when it comes back although
// its hmac-sha256 nonce was seen already and its timestamp may have left
// the skew window:
//   UNIX_MILLIS:HMAC-SHA256(secret, "sbus-hold" NODE UNIX_MILLIS BODY)
// (fields length-prefixed). Only a holder of the secret can make one, it
// covers the node and the whole body, and it is good for `max_age` only.
// The worker remembers each stamp it accepts in the replay cache, so a copy
// of a held message cannot be replayed either.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace sbus {

std::string make_hold_stamp(std::string_view secret, std::string_view node, std::string_view body,
                            std::int64_t now_millis);

struct HoldStamp {
  std::int64_t millis = 0;
  std::string signature;  // hex: the nonce the replay cache remembers
};

// True when `stamp` was made with this secret, node and body no more than
// `max_age` before `now_millis` (nor later than it by as much); fills *out.
bool check_hold_stamp(std::string_view stamp, std::string_view secret, std::string_view node, std::string_view body,
                      std::int64_t now_millis, std::chrono::milliseconds max_age, HoldStamp* out);

}  // namespace sbus
