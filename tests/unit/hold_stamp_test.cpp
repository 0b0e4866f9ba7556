#include "worker/hold_stamp.hpp"

#include <catch2/catch.hpp>

#include <chrono>

using namespace std::chrono_literals;

namespace {
constexpr std::int64_t kNow = 1'800'000'000'000;
}

TEST_CASE("a hold stamp is good for the same secret, node and body within its age") {
  const std::string stamp = sbus::make_hold_stamp("secret", "n1", "<event/>", kNow);
  sbus::HoldStamp parsed;
  REQUIRE(sbus::check_hold_stamp(stamp, "secret", "n1", "<event/>", kNow + 5000, 65s, &parsed));
  CHECK(parsed.millis == kNow);
  CHECK(parsed.signature.size() == 64);
}

TEST_CASE("a hold stamp is refused for another secret, node, body, or past its age") {
  const std::string stamp = sbus::make_hold_stamp("secret", "n1", "<event/>", kNow);
  sbus::HoldStamp parsed;
  CHECK_FALSE(sbus::check_hold_stamp(stamp, "other", "n1", "<event/>", kNow, 65s, &parsed));
  CHECK_FALSE(sbus::check_hold_stamp(stamp, "secret", "n2", "<event/>", kNow, 65s, &parsed));
  CHECK_FALSE(sbus::check_hold_stamp(stamp, "secret", "n1", "<event />", kNow, 65s, &parsed));
  CHECK_FALSE(sbus::check_hold_stamp(stamp, "secret", "n1", "<event/>", kNow + 65001, 65s, &parsed));
  CHECK_FALSE(sbus::check_hold_stamp(stamp, "secret", "n1", "<event/>", kNow - 65001, 65s, &parsed));
}

TEST_CASE("a malformed hold stamp is refused") {
  sbus::HoldStamp parsed;
  for (const char* stamp : {"", ":", "abc:def", "123", ":abcdef", "12x:00"}) {
    INFO(stamp);
    CHECK_FALSE(sbus::check_hold_stamp(stamp, "secret", "n1", "b", kNow, 65s, &parsed));
  }
}
