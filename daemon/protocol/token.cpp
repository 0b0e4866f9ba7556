#include "protocol/token.hpp"

#include "protocol/wire_codec.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

// Only OpenSSL's digest functions, from its static library (see
// daemon/CMakeLists.txt): a worker without TLS maps no libcrypto.so. So the
// low-level SHA-1 and SHA-256 functions, not SHA1() or HMAC(), which go
// through EVP and its providers; they are deprecated in OpenSSL 3 and still
// supported.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace sbus {

std::string compat_token(std::string_view secret, std::string_view date) {
  std::string input;
  input.reserve(secret.size() + 3 + date.size());
  input.append(secret).append(" - ").append(date);

  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA_CTX sha;
  SHA1_Init(&sha);
  SHA1_Update(&sha, input.data(), input.size());
  SHA1_Final(digest, &sha);

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
  // Calendar arithmetic, not mktime: mktime reads the time zone file on
  // every call, and a date moves across month and year ends the same way
  // in every zone.
  using namespace std::chrono;
  const year_month_day date{sys_days{year{local.tm_year + 1900} / (local.tm_mon + 1) / local.tm_mday} +
                            days{day_offset}};
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), "%04d-%02u-%02u", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()));
  return buffer;
}

bool compat_token_valid(std::string_view secret, std::string_view token, std::chrono::system_clock::time_point now) {
  bool valid = false;
  for (int offset = -1; offset <= 1; ++offset) {
    std::string expected = compat_token(secret, local_date(now, offset));
    // No early exit: the time taken does not depend on which day matched.
    if (token.size() == expected.size() && CRYPTO_memcmp(token.data(), expected.data(), expected.size()) == 0) {
      valid = true;
    }
  }
  return valid;
}

CompatTokens::CompatTokens(std::string secret) : secret_(std::move(secret)) {}

void CompatTokens::refresh(std::chrono::system_clock::time_point now) {
  // Also when the clock was set back by more than a refresh period.
  if (now < next_refresh_ && now >= next_refresh_ - kRefresh) return;
  for (int offset = -1; offset <= 1; ++offset) tokens_[offset + 1] = compat_token(secret_, local_date(now, offset));
  next_refresh_ = now + kRefresh;
}

const std::string& CompatTokens::today(std::chrono::system_clock::time_point now) {
  refresh(now);
  return tokens_[1];
}

bool CompatTokens::valid(std::string_view token, std::chrono::system_clock::time_point now) {
  refresh(now);
  bool valid = false;
  for (const std::string& expected : tokens_) {
    if (token.size() == expected.size() && CRYPTO_memcmp(token.data(), expected.data(), expected.size()) == 0) {
      valid = true;
    }
  }
  return valid;
}

}  // namespace sbus

namespace sbus {
namespace {

void append_field(std::string* out, std::string_view field) {
  out->append(std::to_string(field.size())).append(":").append(field).append("\n");
}

std::string to_hex(const unsigned char* data, std::size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(2 * size, '0');
  for (std::size_t i = 0; i < size; ++i) {
    hex[2 * i] = kHex[data[i] >> 4];
    hex[2 * i + 1] = kHex[data[i] & 0xf];
  }
  return hex;
}

bool is_hex(std::string_view text, std::size_t length) {
  if (text.size() != length) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  // RFC 2104: H((K ^ opad) || H((K ^ ipad) || data)), K the key padded with
  // zeros to the block size, or its digest when longer than a block.
  unsigned char block[SHA256_CBLOCK] = {};
  SHA256_CTX sha;
  if (key.size() > sizeof(block)) {
    SHA256_Init(&sha);
    SHA256_Update(&sha, key.data(), key.size());
    SHA256_Final(block, &sha);
  } else {
    std::memcpy(block, key.data(), key.size());
  }
  unsigned char pad[SHA256_CBLOCK];
  unsigned char inner[SHA256_DIGEST_LENGTH];
  unsigned char outer[SHA256_DIGEST_LENGTH];
  for (std::size_t i = 0; i < sizeof(pad); ++i) pad[i] = block[i] ^ 0x36;
  SHA256_Init(&sha);
  SHA256_Update(&sha, pad, sizeof(pad));
  SHA256_Update(&sha, data.data(), data.size());
  SHA256_Final(inner, &sha);
  for (std::size_t i = 0; i < sizeof(pad); ++i) pad[i] = block[i] ^ 0x5c;
  SHA256_Init(&sha);
  SHA256_Update(&sha, pad, sizeof(pad));
  SHA256_Update(&sha, inner, sizeof(inner));
  SHA256_Final(outer, &sha);
  OPENSSL_cleanse(block, sizeof(block));
  OPENSSL_cleanse(pad, sizeof(pad));
  OPENSSL_cleanse(inner, sizeof(inner));
  return to_hex(outer, sizeof(outer));
}

std::string hmac_signature(std::string_view secret, std::string_view id, std::string_view category,
                           std::string_view service, std::string_view params, std::int64_t timestamp,
                           std::string_view nonce) {
  std::string canonical = "sbus-hmac-sha256-v1\n";
  append_field(&canonical, id);
  append_field(&canonical, category);
  append_field(&canonical, service);
  append_field(&canonical, params);
  append_field(&canonical, std::to_string(timestamp));
  append_field(&canonical, nonce);
  return hmac_sha256_hex(secret, canonical);
}

namespace {

// 128 random bits as 32 hex digits, from the kernel's generator, as OpenSSL
// seeds its own: it blocks only before the pool is first initialised at boot.
std::string random_nonce() {
  unsigned char random[16];
  std::size_t filled = 0;
  while (filled < sizeof(random)) {
    const ssize_t n = getrandom(random + filled, sizeof(random) - filled, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) std::abort();  // no randomness: nothing safe to send
    filled += static_cast<std::size_t>(n);
  }
  return to_hex(random, sizeof(random));
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Unix seconds of at most 12 digits.
bool parse_timestamp(std::string_view text, std::int64_t* value) {
  if (text.empty() || text.size() > 12) return false;
  std::int64_t parsed = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    parsed = parsed * 10 + (c - '0');
  }
  *value = parsed;
  return true;
}

bool valid_caller(std::string_view caller) {
  return caller.empty() || valid_caller_id(caller);
}

}  // namespace

std::string make_hmac_token(std::string_view secret, std::string_view id, std::string_view category,
                            std::string_view service, std::string_view params, std::int64_t timestamp) {
  const std::string nonce = random_nonce();
  const std::int64_t now = timestamp < 0 ? unix_now() : timestamp;
  return std::string(kHmacPrefix) + std::to_string(now) + ":" + nonce + ":" +
         hmac_signature(secret, id, category, service, params, now, nonce);
}

bool parse_hmac_token(std::string_view token, HmacToken* parsed) {
  if (token.substr(0, kHmacPrefix.size()) != kHmacPrefix) return false;
  token.remove_prefix(kHmacPrefix.size());
  const std::size_t first = token.find(':');
  const std::size_t second = first == std::string_view::npos ? first : token.find(':', first + 1);
  if (second == std::string_view::npos) return false;
  const std::string_view timestamp = token.substr(0, first);
  const std::string_view nonce = token.substr(first + 1, second - first - 1);
  const std::string_view signature = token.substr(second + 1);
  if (timestamp.empty() || timestamp.size() > 12 || !is_hex(nonce, 32) || !is_hex(signature, 64)) return false;
  std::int64_t value = 0;
  for (char c : timestamp) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  parsed->timestamp = value;
  parsed->nonce = nonce;
  parsed->signature = signature;
  return true;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hmac_v2_call_signature(std::string_view secret, const SignedCall& call, std::int64_t timestamp,
                                   std::string_view nonce) {
  std::string canonical = "sbus-hmac-sha256-v2 call\n";
  append_field(&canonical, call.node);
  append_field(&canonical, call.id);
  append_field(&canonical, call.category);
  append_field(&canonical, call.service);
  append_field(&canonical, call.params);
  append_field(&canonical, std::to_string(timestamp));
  append_field(&canonical, nonce);
  append_field(&canonical, call.caller);
  return hmac_sha256_hex(secret, canonical);
}

std::string make_hmac_v2_token(std::string_view secret, const SignedCall& call, std::string* nonce_out,
                               std::int64_t timestamp) {
  const std::string nonce = random_nonce();
  if (timestamp < 0) timestamp = unix_now();
  if (nonce_out != nullptr) *nonce_out = nonce;
  std::string token(kHmacV2Prefix);
  token.append(std::to_string(timestamp)).append(":").append(nonce).append(":").append(call.caller).append(":");
  token.append(hmac_v2_call_signature(secret, call, timestamp, nonce));
  return token;
}

bool parse_hmac_v2_token(std::string_view token, HmacV2Token* parsed) {
  if (token.substr(0, kHmacV2Prefix.size()) != kHmacV2Prefix) return false;
  token.remove_prefix(kHmacV2Prefix.size());
  std::string_view parts[4];
  for (int i = 0; i < 3; ++i) {
    const std::size_t colon = token.find(':');
    if (colon == std::string_view::npos) return false;
    parts[i] = token.substr(0, colon);
    token.remove_prefix(colon + 1);
  }
  parts[3] = token;
  std::int64_t timestamp = 0;
  if (!parse_timestamp(parts[0], &timestamp) || !is_hex(parts[1], 32) || !valid_caller(parts[2]) ||
      !is_hex(parts[3], 64)) {
    return false;
  }
  parsed->timestamp = timestamp;
  parsed->nonce = parts[1];
  parsed->caller = parts[2];
  parsed->signature = parts[3];
  return true;
}

std::string hmac_v2_reply_signature(std::string_view secret, std::string_view node, std::string_view nonce,
                                    const Reply& reply) {
  std::string canonical = "sbus-hmac-sha256-v2 reply\n";
  append_field(&canonical, node);
  append_field(&canonical, nonce);
  append_field(&canonical, reply.id);
  append_field(&canonical, reply.error_code);
  append_field(&canonical, reply.message);
  return std::string(kHmacV2Prefix) + hmac_sha256_hex(secret, canonical);
}

bool is_unauthenticated_refusal(std::string_view code) {
  return code == errc::kInvalidToken || code == errc::kInvalidSignature || code == errc::kTokenExpired ||
         code == errc::kReplayed || code == errc::kTooLarge;
}

bool hmac_v2_reply_trusted(std::string_view secret, std::string_view node, std::string_view nonce, const Reply& reply) {
  if (reply.signature.empty()) return is_unauthenticated_refusal(reply.error_code);
  return equal_constant_time(reply.signature, hmac_v2_reply_signature(secret, node, nonce, reply));
}

}  // namespace sbus
