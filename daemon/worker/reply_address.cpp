#include "worker/reply_address.hpp"

#include <cstdint>
#include <vector>

namespace sbus {
namespace {

// Erlang's external term format (erl_ext_dist): the tags a pid and its
// node atom are written with.
constexpr std::uint8_t kVersionTag = 131;
constexpr std::uint8_t kPidTag = 103;
constexpr std::uint8_t kNewPidTag = 88;
constexpr std::uint8_t kAtomTag = 100;           // latin-1, 2-byte length
constexpr std::uint8_t kAtomUtf8Tag = 118;       // 2-byte length
constexpr std::uint8_t kSmallAtomTag = 115;      // latin-1, 1-byte length
constexpr std::uint8_t kSmallAtomUtf8Tag = 119;  // 1-byte length

bool base64_decode(std::string_view text, std::vector<std::uint8_t>* out) {
  // One allocation for the whole term: grown byte by byte, the vector took
  // six for a node's term, twice a call (publish_reply, direct_route).
  out->reserve(out->size() + text.size() * 3 / 4 + 1);
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    int value;
    if (c >= 'A' && c <= 'Z')
      value = c - 'A';
    else if (c >= 'a' && c <= 'z')
      value = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      value = c - '0' + 52;
    else if (c == '+')
      value = 62;
    else if (c == '/')
      value = 63;
    else if (c == '=')
      break;
    else
      return false;
    bits = (bits << 6) | static_cast<std::uint32_t>(value);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out->push_back(static_cast<std::uint8_t>((bits >> count) & 0xFF));
    }
  }
  return true;
}

}  // namespace

std::optional<std::string> direct_reply_node(std::string_view reply_to) {
  if (!is_direct_reply_to(reply_to) || reply_to.size() <= kDirectReplyPrefix.size() ||
      reply_to[kDirectReplyPrefix.size()] != '.') {
    return std::nullopt;
  }
  std::string_view rest = reply_to.substr(kDirectReplyPrefix.size() + 1);
  const std::size_t dot = rest.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  std::vector<std::uint8_t> term;
  if (!base64_decode(rest.substr(0, dot), &term)) return std::nullopt;
  if (term.size() < 4 || term[0] != kVersionTag || (term[1] != kPidTag && term[1] != kNewPidTag)) {
    return std::nullopt;
  }
  std::size_t length = 0;
  std::size_t at = 3;
  switch (term[2]) {
    case kAtomTag:
    case kAtomUtf8Tag:
      length = static_cast<std::size_t>(term[3]) << 8 | (term.size() > 4 ? term[4] : 0);
      at = 5;
      break;
    case kSmallAtomTag:
    case kSmallAtomUtf8Tag:
      length = term[3];
      at = 4;
      break;
    default: return std::nullopt;
  }
  if (length == 0 || at + length > term.size()) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(term.data() + at), length);
}

}  // namespace sbus
