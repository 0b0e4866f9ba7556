// Caller identities (docs/security.md#callers): what an hmac-sha256-v2
// token's caller field, the YAML's `callers` and the sender's `caller` may
// hold. Shared by the config, the token codec and the sender; no state.
#pragma once

#include <cstddef>
#include <string_view>

namespace sbus {

// A caller identity: at most this long, of [A-Za-z0-9._@-].
inline constexpr std::size_t kMaxCallerBytes = 64;

// The identity of whoever signs with the shared secret: a compat or
// hmac-sha256 token, or an hmac-sha256-v2 token with an empty caller. No
// caller of `callers` may take it.
inline constexpr std::string_view kSharedCaller = "py-servicebus";

// Whether `caller` is a caller identity: 1 to kMaxCallerBytes of
// [A-Za-z0-9._@-].
inline bool valid_caller_id(std::string_view caller) {
  if (caller.empty() || caller.size() > kMaxCallerBytes) return false;
  for (char c : caller) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '@' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace sbus
