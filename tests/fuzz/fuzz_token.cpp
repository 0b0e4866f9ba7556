// libFuzzer target: a <token> as an agent reads it, in both hmac forms.
// A token that parses must be rebuilt from its parts to the same text, and
// a parsed caller must be empty or a valid caller id.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/token.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  sbus::HmacV2Token v2;
  if (sbus::parse_hmac_v2_token(text, &v2)) {
    if (!v2.caller.empty() && !sbus::valid_caller_id(v2.caller)) __builtin_trap();
    const std::string again = std::string(sbus::kHmacV2Prefix) + std::to_string(v2.timestamp) + ":" + v2.nonce + ":" +
                              v2.caller + ":" + v2.signature;
    sbus::HmacV2Token reparsed;
    if (!sbus::parse_hmac_v2_token(again, &reparsed) || reparsed.caller != v2.caller || reparsed.nonce != v2.nonce ||
        reparsed.signature != v2.signature || reparsed.timestamp != v2.timestamp) {
      __builtin_trap();
    }
  }
  sbus::HmacToken v1;
  if (sbus::parse_hmac_token(text, &v1) && (v1.nonce.size() != 32 || v1.signature.size() != 64)) __builtin_trap();
  return 0;
}
