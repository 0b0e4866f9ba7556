#include <catch2/catch.hpp>

#include "client/call_budget.hpp"
#include "protocol/deadline.hpp"

using namespace std::chrono_literals;
using sbus::Deadline;
using sbus::read_deadline;
using Clock = std::chrono::system_clock;

namespace {

const Clock::time_point kNow{std::chrono::milliseconds(1'796'601'600'000)};

std::string ms_from_now(std::chrono::milliseconds offset) {
  return sbus::deadline_header_value(kNow + offset);
}

}  // namespace

TEST_CASE("a call without a deadline header has no deadline", "[deadline]") {
  const Deadline deadline = read_deadline(std::nullopt, kNow, 60s);
  CHECK(deadline.state == Deadline::State::kNone);
  CHECK(deadline.problem.empty());
}

TEST_CASE("a deadline ahead is live and keeps its time to the millisecond", "[deadline]") {
  const std::string header = ms_from_now(1500ms);
  CHECK(header == "1796601601500");
  const Deadline deadline = read_deadline(header, kNow, 60s);
  CHECK(deadline.live());
  CHECK(deadline.at - kNow == 1500ms);
  CHECK(deadline.problem.empty());
}

TEST_CASE("a deadline at or before now is expired, and one far behind is named as a clock problem", "[deadline]") {
  SECTION("exactly now") {
    const Deadline deadline = read_deadline(ms_from_now(0ms), kNow, 60s);
    CHECK(deadline.expired());
    CHECK(deadline.problem.empty());
  }
  SECTION("a little behind, within max_skew") {
    const Deadline deadline = read_deadline(ms_from_now(-3s), kNow, 60s);
    CHECK(deadline.expired());
    CHECK(deadline.problem.empty());
  }
  SECTION("behind by more than max_skew") {
    const Deadline deadline = read_deadline(ms_from_now(-3600s), kNow, 60s);
    CHECK(deadline.expired());
    CHECK(deadline.problem.find("3600 s") != std::string::npos);
    CHECK(deadline.problem.find("clock") != std::string::npos);
  }
  SECTION("zero, the epoch") {
    CHECK(read_deadline("0", kNow, 60s).expired());
  }
}

TEST_CASE("a deadline absurdly far ahead is ignored, not trusted", "[deadline]") {
  const Deadline deadline = read_deadline(ms_from_now(std::chrono::hours(25) + 61s), kNow, 60s);
  CHECK(deadline.state == Deadline::State::kNone);
  CHECK(deadline.problem.find("24 h ahead") != std::string::npos);
  // Just inside the bound it is taken.
  CHECK(read_deadline(ms_from_now(std::chrono::hours(24) + 59s), kNow, 60s).live());
}

TEST_CASE("a malformed deadline header is no deadline, with the problem named", "[deadline]") {
  for (const char* text : {"", "-5", "+5", "12a", "1.5", " 17", "17 ", "0x10", "99999999999999999",
                           "99999999999999999999999999", "\xff\xfe", "soon"}) {
    INFO(text);
    const Deadline deadline = read_deadline(std::string_view(text), kNow, 60s);
    CHECK(deadline.state == Deadline::State::kNone);
    CHECK(deadline.problem.find("malformed") != std::string::npos);
  }
}

TEST_CASE("a message expiration is the time left in milliseconds, never 0", "[deadline]") {
  CHECK(sbus::expiration_for(1500ms) == "1500");
  CHECK(sbus::expiration_for(0ms) == "1");
  CHECK(sbus::expiration_for(-20ms) == "1");
}

TEST_CASE("a call's budget under an inherited deadline keeps a margin", "[deadline][budget]") {
  using std::chrono::milliseconds;
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1796601600));
  // No inherited deadline: the call's own timeout.
  CHECK(sbus::call_budget(milliseconds(5000), std::nullopt, now) == milliseconds(5000));
  // A tenth of what is left, at most 100 ms.
  CHECK(sbus::deadline_margin(milliseconds(300)) == milliseconds(30));
  CHECK(sbus::deadline_margin(milliseconds(5000)) == milliseconds(100));
  CHECK(sbus::call_budget(milliseconds(10000), now + milliseconds(300), now) == milliseconds(270));
  CHECK(sbus::call_budget(milliseconds(10000), now + milliseconds(2000), now) == milliseconds(1900));
  // The call's own timeout when it is shorter.
  CHECK(sbus::call_budget(milliseconds(500), now + milliseconds(2000), now) == milliseconds(500));
  // Nothing left: no call.
  CHECK_FALSE(sbus::call_budget(milliseconds(500), now, now));
  CHECK_FALSE(sbus::call_budget(milliseconds(500), now - milliseconds(10), now));
  // A few ms left still leave a little (9 of 10 ms).
  CHECK(sbus::call_budget(milliseconds(500), now + milliseconds(10), now) == milliseconds(9));
}
