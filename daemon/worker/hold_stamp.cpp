#include "worker/hold_stamp.hpp"

#include <charconv>

#include "protocol/token.hpp"

namespace sbus {
namespace {

std::string signed_text(std::string_view node, std::int64_t millis, std::string_view body) {
  const std::string when = std::to_string(millis);
  std::string text = "sbus-hold\n";
  for (std::string_view field : {node, std::string_view(when), body}) {
    text += std::to_string(field.size());
    text += ':';
    text += field;
  }
  return text;
}

}  // namespace

std::string make_hold_stamp(std::string_view secret, std::string_view node, std::string_view body,
                            std::int64_t now_millis) {
  return std::to_string(now_millis) + ":" + hmac_sha256_hex(secret, signed_text(node, now_millis, body));
}

bool check_hold_stamp(std::string_view stamp, std::string_view secret, std::string_view node, std::string_view body,
                      std::int64_t now_millis, std::chrono::milliseconds max_age, HoldStamp* out) {
  const std::size_t colon = stamp.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::int64_t millis = 0;
  const auto [end, error] = std::from_chars(stamp.data(), stamp.data() + colon, millis);
  if (error != std::errc() || end != stamp.data() + colon) return false;
  if (millis < now_millis - max_age.count() || millis > now_millis + max_age.count()) return false;
  const std::string_view signature = stamp.substr(colon + 1);
  if (!equal_constant_time(hmac_sha256_hex(secret, signed_text(node, millis, body)), signature)) return false;
  out->millis = millis;
  out->signature = std::string(signature);
  return true;
}

}  // namespace sbus
