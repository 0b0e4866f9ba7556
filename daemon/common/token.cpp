#include "common/token.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <ctime>

namespace sbus {

std::string compat_token(std::string_view secret, std::string_view date) {
  std::string input;
  input.reserve(secret.size() + 3 + date.size());
  input.append(secret).append(" - ").append(date);

  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);

  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(2 * SHA_DIGEST_LENGTH, '0');
  for (int i = 0; i < SHA_DIGEST_LENGTH; ++i) {
    hex[2 * i] = kHex[digest[i] >> 4];
    hex[2 * i + 1] = kHex[digest[i] & 0xf];
  }
  return hex;
}

std::string local_date(std::chrono::system_clock::time_point when, int day_offset) {
  std::time_t t = std::chrono::system_clock::to_time_t(when);
  std::tm local{};
  localtime_r(&t, &local);
  // Normalising through mktime moves across month and year ends and DST.
  local.tm_mday += day_offset;
  local.tm_hour = 12;
  local.tm_isdst = -1;
  std::mktime(&local);
  char buffer[16];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%d", &local);
  return buffer;
}

bool compat_token_valid(std::string_view secret, std::string_view token,
                        std::chrono::system_clock::time_point now) {
  bool valid = false;
  for (int offset = -1; offset <= 1; ++offset) {
    std::string expected = compat_token(secret, local_date(now, offset));
    // No early exit: the time taken does not depend on which day matched.
    if (token.size() == expected.size() &&
        CRYPTO_memcmp(token.data(), expected.data(), expected.size()) == 0) {
      valid = true;
    }
  }
  return valid;
}

}  // namespace sbus
