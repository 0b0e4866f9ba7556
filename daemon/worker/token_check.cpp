#include "worker/token_check.hpp"

#include <algorithm>
#include <chrono>

#include "worker/hold_stamp.hpp"

namespace sbus {

using std::chrono::milliseconds;

TokenCheck::TokenCheck(const Config& config, ReplayCache* replay)
    : config_(config), compat_tokens_(config.secret), replay_(replay) {
  for (std::size_t i = 0; i < config.callers.size(); ++i) callers_.emplace(config.callers[i].id, i);
}

bool TokenCheck::check(const Event& event, bool redelivery, const char** code, std::string* message,
                       std::string* reply_nonce, CallerIdentity* who, std::string_view signed_for) {
  const auto accepts = [this](std::string_view mode) {
    return std::find(config_.accept.begin(), config_.accept.end(), mode) != config_.accept.end();
  };
  const auto now = std::chrono::system_clock::now();
  if (event.token.rfind(kHmacV2Prefix, 0) == 0) {
    if (accepts(kHmacV2Mode)) return check_hmac_v2(event, redelivery, code, message, reply_nonce, who, signed_for);
    *code = errc::kInvalidToken;
    *message = "Token not valid! (this agent does not accept hmac-sha256-v2 tokens)";
    return false;
  }
  if (event.token.rfind(kHmacPrefix, 0) != 0) {
    if (accepts("compat") && compat_tokens_.valid(event.token, now)) return true;
    *code = errc::kInvalidToken;
    *message = accepts("compat") ? "Token not valid!" : "Token not valid! (this agent accepts only hmac tokens)";
    return false;
  }
  HmacToken token;
  if (!accepts("hmac-sha256") || !parse_hmac_token(event.token, &token)) {
    *code = errc::kInvalidToken;
    *message = accepts("hmac-sha256") ? "Token not valid! (malformed hmac-sha256 token)"
                                      : "Token not valid! (this agent does not accept hmac-sha256 tokens)";
    return false;
  }
  const std::int64_t seconds = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (token.timestamp < seconds - config_.max_skew_seconds || token.timestamp > seconds + config_.max_skew_seconds) {
    *code = errc::kTokenExpired;
    *message = "token timestamp is " + std::to_string(seconds - token.timestamp) +
               " s off this agent's clock (max_skew " + std::to_string(config_.max_skew_seconds) + " s)";
    return false;
  }
  const std::string expected = hmac_signature(config_.secret, event.id, event.category, event.service, event.params,
                                              token.timestamp, token.nonce);
  if (!equal_constant_time(expected, token.signature)) {
    *code = errc::kInvalidSignature;
    *message = "signature does not match the call (tampered, or another secret)";
    return false;
  }
  return remember_nonce(token.nonce, token.timestamp, seconds, redelivery, code, message);
}

// hmac-sha256-v2: as hmac-sha256, and signed for this node; replies to it
// are signed (*reply_nonce).
bool TokenCheck::check_hmac_v2(const Event& event, bool redelivery, const char** code, std::string* message,
                               std::string* reply_nonce, CallerIdentity* who, std::string_view signed_for) {
  HmacV2Token token;
  if (!parse_hmac_v2_token(event.token, &token)) {
    *code = errc::kInvalidToken;
    *message = "Token not valid! (malformed hmac-sha256-v2 token)";
    return false;
  }
  const std::int64_t seconds =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (token.timestamp < seconds - config_.max_skew_seconds || token.timestamp > seconds + config_.max_skew_seconds) {
    *code = errc::kTokenExpired;
    *message = "token timestamp is " + std::to_string(seconds - token.timestamp) +
               " s off this agent's clock (max_skew " + std::to_string(config_.max_skew_seconds) + " s)";
    return false;
  }
  const SignedCall call{signed_for.empty() ? std::string_view(config_.node) : signed_for,
                        event.id,
                        event.category,
                        event.service,
                        event.params,
                        token.caller};
  CallerIdentity identity;
  if (signing_key(token, call, &identity, code, message) == nullptr) return false;
  if (!remember_nonce(token.nonce, token.timestamp, seconds, redelivery, code, message)) return false;
  *reply_nonce = std::move(token.nonce);
  if (who != nullptr) *who = std::move(identity);
  return true;
}

// Every key of the caller is tried, so the time taken does not say which
// of a rotation's two keys matched.
const std::string* TokenCheck::signing_key(const HmacV2Token& token, const SignedCall& call, CallerIdentity* who,
                                           const char** code, std::string* message) const {
  if (token.caller.empty()) {
    if (equal_constant_time(hmac_v2_call_signature(config_.secret, call, token.timestamp, token.nonce),
                            token.signature)) {
      return &config_.secret;
    }
    *code = errc::kInvalidSignature;
    *message = "signature does not match the call (tampered, signed for another node, or another secret)";
    return nullptr;
  }
  const auto found = callers_.find(token.caller);
  if (found == callers_.end()) {
    *code = errc::kInvalidToken;
    *message = "Token not valid! (unknown caller " + token.caller + ")";
    return nullptr;
  }
  const CallerConfig& caller = config_.callers[found->second];
  const std::string* matched = nullptr;
  for (const std::string& key : caller.keys) {
    if (equal_constant_time(hmac_v2_call_signature(key, call, token.timestamp, token.nonce), token.signature)) {
      matched = &key;
    }
  }
  if (matched == nullptr) {
    *code = errc::kInvalidSignature;
    *message = "signature does not match the call (tampered, signed for another node, or not with a key of caller " +
               token.caller + ")";
    return nullptr;
  }
  who->caller = caller.id;
  who->index = found->second + 1;
  who->key = matched;
  return matched;
}

// Only a correctly signed call takes a slot: junk cannot fill the cache.
bool TokenCheck::remember_nonce(const std::string& nonce, std::int64_t timestamp, std::int64_t now, bool redelivery,
                                const char** code, std::string* message) {
  if (replay_ == nullptr) {
    *code = errc::kReplayed;
    *message = "no replay cache: refusing hmac calls";
    return false;
  }
  switch (replay_->remember(nonce, timestamp + config_.max_skew_seconds, now)) {
    case ReplayCache::Result::kFresh: return true;
    case ReplayCache::Result::kReplayed:
      if (redelivery) return true;
      *code = errc::kReplayed;
      *message = "this call was already received (nonce seen before): replay refused";
      return false;
    case ReplayCache::Result::kFull:
      *code = errc::kReplayed;
      *message = "replay cache full: call refused";
      return false;
  }
  return false;
}

void TokenCheck::forget(std::string_view token) {
  if (replay_ == nullptr) return;
  if (HmacV2Token v2; parse_hmac_v2_token(token, &v2)) {
    replay_->forget(v2.nonce);
  } else if (HmacToken v1; parse_hmac_token(token, &v1)) {
    replay_->forget(v1.nonce);
  }
}

bool TokenCheck::held_caller(const Event& event, CallerIdentity* who, const char** code, std::string* message) const {
  HmacV2Token token;
  if (!parse_hmac_v2_token(event.token, &token) || token.caller.empty()) return true;
  const auto found = callers_.find(token.caller);
  if (found == callers_.end()) {
    *code = errc::kInvalidToken;
    *message = "Token not valid! (unknown caller " + token.caller + ")";
    return false;
  }
  who->caller = token.caller;
  who->index = found->second + 1;
  return true;
}

bool TokenCheck::back_from_hold(std::string_view body,
                                const std::vector<std::pair<std::string, std::string>>& headers) {
  if (replay_ == nullptr) return false;
  const auto found =
      std::find_if(headers.begin(), headers.end(), [](const auto& header) { return header.first == "x-sbus-hold"; });
  if (found == headers.end()) return false;
  const auto now = std::chrono::system_clock::now();
  const std::int64_t now_ms = std::chrono::duration_cast<milliseconds>(now.time_since_epoch()).count();
  const milliseconds max_age = milliseconds(config_.hold_ms) + std::chrono::seconds(config_.max_skew_seconds);
  HoldStamp stamp;
  if (!check_hold_stamp(found->second, config_.secret, config_.node, body, now_ms, max_age, &stamp)) {
    return false;
  }
  const std::int64_t expires = (stamp.millis + max_age.count()) / 1000 + 1;
  return replay_->remember("hold:" + stamp.signature, expires, now_ms / 1000) == ReplayCache::Result::kFresh;
}

}  // namespace sbus
