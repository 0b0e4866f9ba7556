#include "protocol/message_id.hpp"

#include <sys/random.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>

namespace sbus {
namespace {

// The length of the UTF-8 sequence that starts at `text[at]`, or 0 when it
// is not a valid one (overlong forms, surrogates and code points past
// U+10FFFF included).
std::size_t utf8_length(std::string_view text, std::size_t at) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(at);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  std::uint32_t code = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    code = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    code = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    code = lead & 0x07;
  } else {
    return 0;
  }
  if (at + length > text.size()) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(at + i) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(at + i) & 0x3F);
  }
  const bool overlong = (length == 3 && code < 0x800) || (length == 4 && code < 0x10000);
  if (overlong || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) return 0;
  return length;
}

}  // namespace

std::string message_id_problem(std::string_view id) {
  if (id.empty()) return "message id is empty";
  if (id.size() > kMaxMessageIdBytes) {
    return "message id is " + std::to_string(id.size()) + " bytes, over " + std::to_string(kMaxMessageIdBytes);
  }
  for (std::size_t at = 0; at < id.size();) {
    const std::size_t length = utf8_length(id, at);
    if (length == 0) return "message id is not UTF-8 text (byte " + std::to_string(at) + ")";
    if (length == 1 && (static_cast<unsigned char>(id[at]) < 0x20 || id[at] == 0x7F)) {
      return "message id holds a control character (byte " + std::to_string(at) + ")";
    }
    at += length;
  }
  return {};
}

std::string fresh_message_id_prefix() {
  unsigned char random[16];
  std::size_t got = 0;
  while (got < sizeof(random)) {
    const ssize_t n = getrandom(random + got, sizeof(random) - got, 0);
    if (n < 0) throw std::runtime_error("getrandom() failed: no random bytes for message ids");
    got += static_cast<std::size_t>(n);
  }
  std::string hex;
  hex.reserve(2 * sizeof(random) + 1);
  for (unsigned char b : random) {
    char digits[3];
    std::snprintf(digits, sizeof(digits), "%02x", b);
    hex += digits;
  }
  return hex + "-";
}

}  // namespace sbus
