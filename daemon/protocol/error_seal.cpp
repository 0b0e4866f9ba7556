#include "protocol/error_seal.hpp"

#include "protocol/token.hpp"

namespace sbus {
namespace {

std::string sealed_text(std::string_view node, std::string_view body) {
  std::string text = "sbus-error\n";
  for (std::string_view field : {node, body}) {
    text += std::to_string(field.size());
    text += ':';
    text += field;
  }
  return text;
}

}  // namespace

std::string error_seal(std::string_view secret, std::string_view node, std::string_view body) {
  return hmac_sha256_hex(secret, sealed_text(node, body));
}

bool error_seal_valid(std::string_view seal, std::string_view secret, std::string_view node, std::string_view body) {
  return !seal.empty() && !secret.empty() && equal_constant_time(error_seal(secret, node, body), seal);
}

}  // namespace sbus
