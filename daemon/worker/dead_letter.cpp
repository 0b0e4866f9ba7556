#include "worker/dead_letter.hpp"

#include <utility>

namespace sbus {

DeadLetterPolicy::DeadLetterPolicy(int max_retries)
    : max_retries_(max_retries), retry_({std::chrono::milliseconds(100), std::chrono::seconds(5)}) {}

MessageFate DeadLetterPolicy::after_attempt(int attempt, const std::string& service, const std::string& error) const {
  MessageFate fate;
  if (attempt <= max_retries_) {
    fate.retry_in = retry_.delay_for(attempt);
    return fate;
  }
  fate.verdict = MessageFate::Verdict::kDeadLetter;
  fate.entry = {service, error, attempt, {}};
  return fate;
}

MessageFate DeadLetterPolicy::before_retry(std::optional<WallClock::time_point> deadline,
                                           WallClock::time_point now) const {
  MessageFate fate;
  if (deadline && now >= *deadline) fate.verdict = MessageFate::Verdict::kDrop;
  return fate;
}

MessageFate DeadLetterPolicy::after_crashes(int crashes, const std::string& service) const {
  MessageFate fate;
  if (crashes <= max_retries_) return fate;
  fate.verdict = MessageFate::Verdict::kDeadLetter;
  fate.entry = {service, "the message crashed the worker " + std::to_string(crashes) + " times", crashes, {}};
  return fate;
}

MessageFate DeadLetterPolicy::service_down(const std::string& service, std::string reason) {
  MessageFate fate;
  fate.verdict = MessageFate::Verdict::kDeadLetter;
  fate.entry = {service, std::move(reason), 0, {}};
  return fate;
}

ErrorEntry DeadLetterPolicy::refused(const Refusal& refusal) {
  ErrorEntry entry{refusal.service, refusal.code + ": " + refusal.message, 0, {{"x-sbus-refused", refusal.code}}};
  if (refusal.token_refused) entry.own.emplace_back("x-sbus-token", "refused");
  if (refusal.body_dropped) entry.own.emplace_back("x-sbus-body", "dropped");
  if (!refusal.reply_to.empty()) entry.own.emplace_back("x-sbus-reply-to", refusal.reply_to);
  return entry;
}

}  // namespace sbus
