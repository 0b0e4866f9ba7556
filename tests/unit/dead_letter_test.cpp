#include "worker/dead_letter.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

using sbus::DeadLetterPolicy;
using sbus::ErrorEntry;
using sbus::MessageFate;
using Verdict = sbus::MessageFate::Verdict;
using std::chrono::milliseconds;

namespace {

std::string own(const ErrorEntry& entry, const std::string& key) {
  for (const auto& [name, value] : entry.own) {
    if (name == key) return value;
  }
  return "(none)";
}

}  // namespace

TEST_CASE("a message that throws is retried with back-off until its retries are spent, then dead-lettered",
          "[dead_letter]") {
  const DeadLetterPolicy policy(2);
  const MessageFate first = policy.after_attempt(1, "test.fail", "boom");
  CHECK(first.verdict == Verdict::kRetry);
  CHECK(first.retry_in == milliseconds(100));
  const MessageFate second = policy.after_attempt(2, "test.fail", "boom");
  CHECK(second.verdict == Verdict::kRetry);
  CHECK(second.retry_in == milliseconds(200));
  const MessageFate third = policy.after_attempt(3, "test.fail", "boom");
  REQUIRE(third.verdict == Verdict::kDeadLetter);
  CHECK(third.entry.service == "test.fail");
  CHECK(third.entry.reason == "boom");
  CHECK(third.entry.attempts == 3);
  CHECK(third.entry.own.empty());
  SECTION("the back-off stops growing at 5 s") {
    CHECK(DeadLetterPolicy(100).after_attempt(20, "s", "e").retry_in == milliseconds(5000));
  }
  SECTION("with no retries, the first failure is final") {
    CHECK(DeadLetterPolicy(0).after_attempt(1, "s", "e").verdict == Verdict::kDeadLetter);
  }
}

TEST_CASE("a retry whose message's deadline has passed is dropped, neither run nor kept", "[dead_letter]") {
  const DeadLetterPolicy policy(5);
  const auto now = std::chrono::system_clock::now();
  CHECK(policy.before_retry(std::nullopt, now).verdict == Verdict::kRetry);
  CHECK(policy.before_retry(now + milliseconds(1), now).verdict == Verdict::kRetry);
  CHECK(policy.before_retry(now, now).verdict == Verdict::kDrop);
  CHECK(policy.before_retry(now - milliseconds(1), now).verdict == Verdict::kDrop);
}

TEST_CASE("a message that crashed workers runs again up to max_retries crashes, then is dead-lettered",
          "[dead_letter]") {
  const DeadLetterPolicy policy(2);
  CHECK(policy.after_crashes(0, "test.crash").verdict == Verdict::kRetry);
  CHECK(policy.after_crashes(2, "test.crash").verdict == Verdict::kRetry);
  const MessageFate fate = policy.after_crashes(3, "test.crash");
  REQUIRE(fate.verdict == Verdict::kDeadLetter);
  CHECK(fate.entry.reason == "the message crashed the worker 3 times");
  CHECK(fate.entry.attempts == 3);
  CHECK(fate.entry.service == "test.crash");
}

TEST_CASE("a message to a service that cannot run goes to the error queue at once, with the reason", "[dead_letter]") {
  const MessageFate fate = DeadLetterPolicy::service_down("broken.svc", "service unavailable: no database");
  REQUIRE(fate.verdict == Verdict::kDeadLetter);
  CHECK(fate.entry.service == "broken.svc");
  CHECK(fate.entry.reason == "service unavailable: no database");
  CHECK(fate.entry.attempts == 0);
}

TEST_CASE("a refused delivery is kept with its code, marked as refused", "[dead_letter]") {
  DeadLetterPolicy::Refusal refusal{"invalid_token", "bad signature"};
  SECTION("a message refused for its token is marked so that requeue does not sign it anew") {
    refusal.service = "test.record";
    refusal.token_refused = true;
    const ErrorEntry entry = DeadLetterPolicy::refused(refusal);
    CHECK(entry.service == "test.record");
    CHECK(entry.reason == "invalid_token: bad signature");
    CHECK(entry.attempts == 0);
    CHECK(own(entry, "x-sbus-refused") == "invalid_token");
    CHECK(own(entry, "x-sbus-token") == "refused");
    CHECK(own(entry, "x-sbus-body") == "(none)");
    CHECK(own(entry, "x-sbus-reply-to") == "(none)");
  }
  SECTION("a call too large to read says so, and where its error reply went") {
    refusal = {"message_too_large", "over the limit"};
    refusal.body_dropped = true;
    refusal.reply_to = "amq.rabbitmq.reply-to.abc";
    const ErrorEntry entry = DeadLetterPolicy::refused(refusal);
    CHECK(entry.service.empty());
    CHECK(own(entry, "x-sbus-refused") == "message_too_large");
    CHECK(own(entry, "x-sbus-token") == "(none)");
    CHECK(own(entry, "x-sbus-body") == "dropped");
    CHECK(own(entry, "x-sbus-reply-to") == "amq.rabbitmq.reply-to.abc");
  }
}
