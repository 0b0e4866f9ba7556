// Wakeup: the futex hand-off between the connection thread and a service
// thread. A fire is never lost, whether it comes before or during the sleep.
#include "worker/wakeup.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST_CASE("A fire between arm and sleep makes the sleep return at once", "[wakeup]") {
  sbus::Wakeup wakeup;
  wakeup.arm();
  wakeup.fire();
  const auto started = Clock::now();
  wakeup.sleep_for(10s);
  CHECK(Clock::now() - started < 5s);
}

TEST_CASE("A fire wakes a thread asleep on the Wakeup", "[wakeup]") {
  sbus::Wakeup wakeup;
  std::atomic<bool> woke{false};
  wakeup.arm();
  std::thread sleeper([&] {
    wakeup.sleep_for(30s);
    woke = true;
  });
  std::this_thread::sleep_for(50ms);
  const auto fired = Clock::now();
  wakeup.fire();
  sleeper.join();
  CHECK(woke);
  CHECK(Clock::now() - fired < 10s);
}

TEST_CASE("An armed Wakeup nobody fires sleeps until its timeout", "[wakeup]") {
  sbus::Wakeup wakeup;
  wakeup.arm();
  const auto started = Clock::now();
  wakeup.sleep_for(100ms);
  CHECK(Clock::now() - started >= 90ms);
}
