// RestartPolicy with made-up time points: back-off on rapid failures, reset
// after a healthy run, give up on a fatal exit.
#include "supervisor/restart_policy.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <vector>

using namespace std::chrono_literals;
using sbus::RestartPolicy;

namespace {

const RestartPolicy::TimePoint kStart = RestartPolicy::TimePoint{} + 1000h;

// The delay the policy chose for an exit at `now`.
std::chrono::milliseconds delay_of(const RestartPolicy::Decision& decision, RestartPolicy::TimePoint now) {
  REQUIRE_FALSE(decision.give_up);
  return std::chrono::duration_cast<std::chrono::milliseconds>(decision.restart_at - now);
}

}  // namespace

TEST_CASE("the first restart comes after 100 ms", "[restart_policy]") {
  RestartPolicy policy;
  SECTION("after a crash at start") {
    CHECK(delay_of(policy.on_exit(false, 0ms, kStart), kStart) == 100ms);
  }
  SECTION("after a run just short of healthy") {
    CHECK(delay_of(policy.on_exit(false, 9999ms, kStart), kStart) == 100ms);
  }
  SECTION("after a long healthy run") {
    CHECK(delay_of(policy.on_exit(false, 24h, kStart), kStart) == 100ms);
  }
}

TEST_CASE("rapid failures double the delay up to the 30 s cap", "[restart_policy]") {
  RestartPolicy policy;
  std::vector<std::chrono::milliseconds> delays;
  RestartPolicy::TimePoint now = kStart;
  for (int i = 0; i < 12; ++i) {
    const RestartPolicy::Decision decision = policy.on_exit(false, 50ms, now);
    delays.push_back(delay_of(decision, now));
    now = decision.restart_at + 50ms;
  }
  CHECK(delays == std::vector<std::chrono::milliseconds>{100ms, 200ms, 400ms, 800ms, 1600ms, 3200ms, 6400ms, 12800ms,
                                                         25600ms, 30000ms, 30000ms, 30000ms});
  CHECK(policy.rapid_failures() == 12);

  SECTION("and stay at the cap however many failures follow") {
    for (int i = 0; i < 10000; ++i) policy.on_exit(false, 1ms, now);
    CHECK(delay_of(policy.on_exit(false, 1ms, now), now) == 30s);
  }
}

TEST_CASE("a healthy run resets the delay and the failure count", "[restart_policy]") {
  RestartPolicy policy;
  RestartPolicy::TimePoint now = kStart;
  for (int i = 0; i < 6; ++i) policy.on_exit(false, 10ms, now);
  REQUIRE(policy.rapid_failures() == 6);
  REQUIRE(delay_of(policy.on_exit(false, 10ms, now), now) == 6400ms);

  SECTION("exactly healthy_after counts as healthy") {
    CHECK(delay_of(policy.on_exit(false, 10s, now), now) == 100ms);
    CHECK(policy.rapid_failures() == 0);
  }
  SECTION("longer, too") {
    CHECK(delay_of(policy.on_exit(false, 5min, now), now) == 100ms);
    CHECK(policy.rapid_failures() == 0);
  }
  SECTION("and the doubling starts over afterwards") {
    policy.on_exit(false, 1h, now);
    CHECK(delay_of(policy.on_exit(false, 10ms, now), now) == 100ms);
    CHECK(delay_of(policy.on_exit(false, 10ms, now), now) == 200ms);
    CHECK(policy.rapid_failures() == 2);
  }
  SECTION("just short of healthy_after still counts as rapid") {
    CHECK(delay_of(policy.on_exit(false, 9999ms, now), now) == 12800ms);
  }
}

TEST_CASE("a fatal exit gives up instead of restarting", "[restart_policy]") {
  RestartPolicy policy;
  SECTION("on the first exit") {
    CHECK(policy.on_exit(true, 0ms, kStart).give_up);
  }
  SECTION("after a long healthy run") {
    CHECK(policy.on_exit(true, 24h, kStart).give_up);
  }
  SECTION("after rapid failures") {
    policy.on_exit(false, 0ms, kStart);
    policy.on_exit(false, 0ms, kStart);
    CHECK(policy.on_exit(true, 0ms, kStart).give_up);
  }
}

TEST_CASE("the restart time is the exit time plus the delay", "[restart_policy]") {
  RestartPolicy policy;
  const RestartPolicy::TimePoint later = kStart + 12345ms;
  CHECK(policy.on_exit(false, 1ms, later).restart_at == later + 100ms);
  CHECK(policy.on_exit(false, 1ms, later).restart_at == later + 200ms);
}

TEST_CASE("custom options set the first delay, the cap and what counts as healthy", "[restart_policy]") {
  sbus::RestartOptions options;
  options.first_delay = 1s;
  options.max_delay = 5s;
  options.healthy_after = 1min;
  RestartPolicy policy(options);
  CHECK(delay_of(policy.on_exit(false, 30s, kStart), kStart) == 1s);
  CHECK(delay_of(policy.on_exit(false, 30s, kStart), kStart) == 2s);
  CHECK(delay_of(policy.on_exit(false, 30s, kStart), kStart) == 4s);
  CHECK(delay_of(policy.on_exit(false, 30s, kStart), kStart) == 5s);
  CHECK(delay_of(policy.on_exit(false, 1min, kStart), kStart) == 1s);
  CHECK(policy.rapid_failures() == 0);
}

TEST_CASE("a crash pinned on the calls it was running restarts at once and does not grow the back-off",
          "[restart_policy]") {
  using Exit = RestartPolicy::Exit;
  RestartPolicy policy;
  RestartPolicy::TimePoint now = kStart;
  SECTION("however many follow one another") {
    for (int i = 0; i < 20; ++i) {
      CHECK(delay_of(policy.on_exit(Exit::kCrashDuringCall, 50ms, now), now) == 0ms);
      now += 300ms;
    }
    CHECK(policy.rapid_failures() == 0);
  }
  SECTION("between unexplained failures, which keep their own doubling") {
    CHECK(delay_of(policy.on_exit(Exit::kFailure, 10ms, now), now) == 100ms);
    CHECK(delay_of(policy.on_exit(Exit::kFailure, 10ms, now), now) == 200ms);
    CHECK(delay_of(policy.on_exit(Exit::kCrashDuringCall, 10ms, now), now) == 0ms);
    CHECK(delay_of(policy.on_exit(Exit::kFailure, 10ms, now), now) == 400ms);
    CHECK(policy.rapid_failures() == 3);
  }
  SECTION("even after the back-off reached its cap") {
    for (int i = 0; i < 12; ++i) policy.on_exit(Exit::kFailure, 10ms, now);
    REQUIRE(delay_of(policy.on_exit(Exit::kFailure, 10ms, now), now) == 30s);
    CHECK(policy.on_exit(Exit::kCrashDuringCall, 10ms, now).restart_at == now);
  }
  SECTION("while a fatal exit still gives up") {
    policy.on_exit(Exit::kCrashDuringCall, 10ms, now);
    CHECK(policy.on_exit(Exit::kFatal, 10ms, now).give_up);
  }
}
