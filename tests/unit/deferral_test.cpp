#include "protocol/deferral.hpp"

#include <catch2/catch.hpp>

#include <map>

using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

using Clock = std::chrono::system_clock;

milliseconds delay_of(std::string_view text) {
  std::string error;
  const auto delay = sbus::parse_delay(text, &error);
  INFO(error);
  REQUIRE(delay);
  CHECK(error.empty());
  return *delay;
}

std::string refusal_of(std::string_view text) {
  std::string error;
  const auto delay = sbus::parse_delay(text, &error);
  CHECK_FALSE(delay);
  return error;
}

sbus::DelayPlan plan_of(milliseconds delay) {
  std::string error;
  const auto plan = sbus::plan_delay(delay, &error);
  INFO(error);
  REQUIRE(plan);
  return *plan;
}

// Where a message lands and how long it waited on the way, followed through
// the topology as delay_levels() describes it and RabbitMQ routes it: at the
// exchange of level K, a message with the header of K goes into the queue
// (TTL, then dead-lettered to `next`); any other goes on to `next` (the
// alternate exchange).
struct Trip {
  std::string landed;  // the exchange after the levels
  milliseconds waited{0};
  std::vector<std::string> queues;
};

Trip follow(const std::string& entry, const std::vector<std::pair<std::string, std::string>>& headers) {
  std::map<std::string, sbus::DelayLevel> by_name;
  for (const auto& level : sbus::delay_levels("sbus.delay")) by_name[level.name] = level;
  Trip trip;
  std::string exchange = entry;
  for (auto found = by_name.find(exchange); found != by_name.end(); found = by_name.find(exchange)) {
    const sbus::DelayLevel& level = found->second;
    for (const auto& [name, value] : headers) {
      if (name == level.header && value == "1") {
        trip.waited += milliseconds(level.ttl_ms);
        trip.queues.push_back(level.name);
      }
    }
    exchange = level.next;
  }
  trip.landed = exchange;
  return trip;
}

Trip trip_of(milliseconds delay) {
  const sbus::DelayPlan plan = plan_of(delay);
  return follow(sbus::delay_entry_exchange("sbus.delay", plan),
                sbus::delay_headers(plan, sbus::DeferTarget{sbus::DeferTarget::Kind::kNode, "NODE-01"}));
}

}  // namespace

TEST_CASE("delays are read with the units ms, s, m, h and d, and in sums", "[deferral]") {
  CHECK(delay_of("250ms") == 250ms);
  CHECK(delay_of("90s") == 90s);
  CHECK(delay_of("2m") == 2min);
  CHECK(delay_of("2h") == 2h);
  CHECK(delay_of("1d") == 24h);
  CHECK(delay_of("1h30m") == 90min);
  CHECK(delay_of("1s5ms") == 1005ms);
  CHECK(delay_of("497d") == 497 * 24h);
}

TEST_CASE("a delay that is not one, negative, zero or beyond the maximum is refused, saying why", "[deferral]") {
  SECTION("not a delay") {
    for (const char* text : {"", "90", "s", "1.5s", "90 s", "10x", "ten seconds", "1h-5m", "+5s"}) {
      INFO(text);
      CHECK_THAT(refusal_of(text), Catch::Contains("a number and a unit"));
    }
  }
  SECTION("negative") {
    CHECK_THAT(refusal_of("-5s"), Catch::Contains("cannot be negative"));
  }
  SECTION("zero") {
    CHECK_THAT(refusal_of("0ms"), Catch::Contains("must be positive"));
  }
  SECTION("beyond the maximum, also where the number itself overflows") {
    for (const char* text : {"498d", "1000000h", "497d1d", "99999999999999999999999s"}) {
      INFO(text);
      CHECK_THAT(refusal_of(text), Catch::Contains("too long"));
    }
  }
}

TEST_CASE("an RFC 3339 time is read in UTC, with a fraction and an offset", "[deferral]") {
  std::string error;
  const auto christmas = sbus::parse_rfc3339("2026-12-24T18:00:00Z", &error);
  REQUIRE(christmas);
  CHECK(Clock::to_time_t(*christmas) == 1798135200);
  CHECK(sbus::parse_rfc3339("2026-12-24t18:00:00z", &error) == christmas);
  CHECK(sbus::parse_rfc3339("2026-12-24T19:00:00+01:00", &error) == christmas);
  CHECK(sbus::parse_rfc3339("2026-12-24T17:30:00-00:30", &error) == christmas);
  CHECK(sbus::parse_rfc3339("2026-12-24T18:00:00.25Z", &error) == *christmas + 250ms);
  for (const char* text : {"2026-12-24", "2026-12-24T18:00:00", "2026-12-24 18:00:00Z", "2026-02-31T00:00:00Z",
                           "2026-12-24T25:00:00Z", "2026-12-24T18:00:00.Z", "2026-12-24T18:00:00Z junk", "tomorrow"}) {
    INFO(text);
    CHECK_FALSE(sbus::parse_rfc3339(text, &error));
    CHECK_THAT(error, Catch::Contains("not an RFC 3339 time"));
  }
}

TEST_CASE("the delay until a time is refused when the time has passed or is too far ahead", "[deferral]") {
  const Clock::time_point now = Clock::from_time_t(1796601600);
  std::string error;
  CHECK(sbus::delay_until(now + 90s, now, &error) == 90s);
  CHECK(sbus::delay_until(now + 1500us, now, &error) == 2ms);  // rounded up: never early
  CHECK_FALSE(sbus::delay_until(now - 1s, now, &error));
  CHECK_THAT(error, Catch::Contains("in the past"));
  CHECK_FALSE(sbus::delay_until(now, now, &error));
  CHECK_FALSE(sbus::delay_until(now + 498 * 24h, now, &error));
  CHECK_THAT(error, Catch::Contains("too far ahead"));
}

TEST_CASE("a delay is split into the levels of its bits, in units of 10 ms rounded up", "[deferral]") {
  SECTION("90 s is 9000 units: 8192 + 512 + 256 + 32 + 8") {
    const sbus::DelayPlan plan = plan_of(90s);
    CHECK(plan.units == 9000);
    CHECK(plan.levels == std::vector<int>{13, 9, 8, 5, 3});
    CHECK(sbus::delay_entry_exchange("sbus.delay", plan) == "sbus.delay.13");
  }
  SECTION("the shortest delays take level 0 alone, and part of a unit counts as a whole one") {
    CHECK(plan_of(1ms).levels == std::vector<int>{0});
    CHECK(plan_of(10ms).levels == std::vector<int>{0});
    CHECK(plan_of(11ms).units == 2);
    CHECK(plan_of(11ms).delay() == 20ms);
  }
  SECTION("the longest takes all 32 levels") {
    const sbus::DelayPlan plan = plan_of(sbus::kMaxDelay);
    CHECK(plan.units == 0xFFFFFFFFu);
    CHECK(plan.levels.size() == 32);
    CHECK(plan.levels.front() == 31);
    CHECK(plan.levels.back() == 0);
  }
  SECTION("zero, negative and beyond the maximum are refused") {
    std::string error;
    CHECK_FALSE(sbus::plan_delay(0ms, &error));
    CHECK_THAT(error, Catch::Contains("must be positive"));
    CHECK_FALSE(sbus::plan_delay(-5ms, &error));
    CHECK_FALSE(sbus::plan_delay(sbus::kMaxDelay + 1ms, &error));
    CHECK_THAT(error, Catch::Contains("too long"));
  }
}

TEST_CASE("the levels double from 10 ms, each handing on to the one below, the last to the out exchange",
          "[deferral]") {
  const auto levels = sbus::delay_levels("sbus.delay");
  REQUIRE(levels.size() == 32);
  CHECK(levels[0].name == "sbus.delay.0");
  CHECK(levels[0].ttl_ms == 10);
  CHECK(levels[0].next == "sbus.delay.out");
  CHECK(levels[0].header == "sbus-delay-0");
  CHECK(levels[13].ttl_ms == 81920);
  CHECK(levels[13].next == "sbus.delay.12");
  CHECK(levels[31].ttl_ms == 21474836480);  // about 248.6 days
  CHECK(sbus::delay_nodes_exchange("acme.later") == "acme.later.nodes");
}

TEST_CASE("a deferred message waits exactly its delay, rounded up to 10 ms, and lands on the out exchange",
          "[deferral]") {
  for (milliseconds delay : {milliseconds(10), milliseconds(50), milliseconds(1000), milliseconds(65000),
                             milliseconds(90000), milliseconds(7), milliseconds(12345)}) {
    INFO(delay.count());
    const Trip trip = trip_of(delay);
    CHECK(trip.landed == "sbus.delay.out");
    CHECK(trip.waited >= delay);
    CHECK(trip.waited < delay + sbus::kDelayUnit);
  }
}

TEST_CASE("a one-year delay visits the levels of its bits and lands where a short one does", "[deferral]") {
  const milliseconds year = std::chrono::duration_cast<milliseconds>(std::chrono::hours(24 * 365));
  const Trip trip = trip_of(year);
  CHECK(trip.waited == year);
  CHECK(trip.landed == "sbus.delay.out");
  // 31,536,000,000 ms is 3,153,600,000 units: 0b1011'1011'1111'1000'0001'1110'0000'0000
  CHECK(trip.queues == std::vector<std::string>{"sbus.delay.31", "sbus.delay.29", "sbus.delay.28", "sbus.delay.27",
                                                "sbus.delay.25", "sbus.delay.24", "sbus.delay.23", "sbus.delay.22",
                                                "sbus.delay.21", "sbus.delay.20", "sbus.delay.19", "sbus.delay.12",
                                                "sbus.delay.11", "sbus.delay.10", "sbus.delay.9"});
  const auto headers = sbus::delay_headers(plan_of(year), sbus::DeferTarget{sbus::DeferTarget::Kind::kNode, "N"});
  CHECK(headers.back() == std::pair<std::string, std::string>{"sbus-delay-to", "node"});
}

TEST_CASE("the destination names its kind in one header, and topics are a kind", "[deferral]") {
  const auto headers = sbus::delay_headers(plan_of(1s), sbus::DeferTarget{sbus::DeferTarget::Kind::kTopic, "a.b"});
  CHECK(headers.back() == std::pair<std::string, std::string>{"sbus-delay-to", "topic"});
}
