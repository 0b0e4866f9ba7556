// The replies kept for calls that finished after their connection was lost:
// found by the redelivered call's key, taken once, and bounded.
#include "worker/unsent_replies.hpp"

#include <catch2/catch.hpp>

#include <string>

TEST_CASE("a kept reply is found by its call's key and taken once", "[unsent_replies]") {
  sbus::UnsentReplies unsent;
  unsent.keep(42, "the reply");
  REQUIRE(unsent.find(42) != nullptr);
  CHECK(*unsent.find(42) == "the reply");
  CHECK(unsent.find(43) == nullptr);
  CHECK(unsent.take(42) == "the reply");
  CHECK(unsent.find(42) == nullptr);
  CHECK(unsent.take(42).empty());
}

TEST_CASE("a call without a key keeps nothing", "[unsent_replies]") {
  sbus::UnsentReplies unsent;
  unsent.keep(0, "the reply");
  CHECK(unsent.find(0) == nullptr);
}

TEST_CASE("past kUnsentReplies the oldest reply is forgotten first", "[unsent_replies]") {
  sbus::UnsentReplies unsent;
  for (std::uint64_t key = 1; key <= sbus::UnsentReplies::kUnsentReplies; ++key) unsent.keep(key, std::to_string(key));
  CHECK(unsent.find(1) != nullptr);
  unsent.keep(sbus::UnsentReplies::kUnsentReplies + 1, "newest");
  CHECK(unsent.find(1) == nullptr);
  CHECK(unsent.find(2) != nullptr);
  CHECK(*unsent.find(sbus::UnsentReplies::kUnsentReplies + 1) == "newest");
}

TEST_CASE("a reply kept again for the same call replaces the first", "[unsent_replies]") {
  sbus::UnsentReplies unsent;
  unsent.keep(7, "first");
  unsent.keep(7, "second");
  CHECK(unsent.take(7) == "second");
}
