// Reply addresses after the broker failed to deliver a reply (541): the
// ones used within the window become suspects and go through the
// quarantine until proven alive or dead.
#include "worker/reply_guard.hpp"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using Route = sbus::ReplyGuard::Route;

TEST_CASE("after a failed delivery the addresses of the last seconds are suspects", "[reply_guard]") {
  sbus::ReplyGuard guard;
  const auto t0 = sbus::ReplyGuard::Clock::time_point{} + 1h;
  const std::uint64_t old_caller = sbus::ReplyGuard::address("amq.rabbitmq.reply-to.old");
  const std::uint64_t caller = sbus::ReplyGuard::address("amq.rabbitmq.reply-to.a");
  const std::uint64_t gone = sbus::ReplyGuard::address("amq.rabbitmq.reply-to.b");
  guard.sent(old_caller, t0);
  guard.sent(caller, t0 + 10s);
  guard.sent(gone, t0 + 11s);
  guard.sent(caller, t0 + 11s);
  CHECK(guard.route(caller) == Route::kDirect);

  CHECK(guard.delivery_failed(t0 + 12s) == 2);
  CHECK(guard.route(caller) == Route::kQuarantine);
  CHECK(guard.route(gone) == Route::kQuarantine);
  CHECK(guard.route(old_caller) == Route::kDirect);  // outside the window

  guard.alive(caller);
  guard.dead(gone);
  CHECK(guard.route(caller) == Route::kDirect);
  CHECK(guard.route(gone) == Route::kDrop);
  // Another failure: the live caller is a suspect again, a dead address
  // stays dead.
  guard.sent(gone, t0 + 13s);
  CHECK(guard.delivery_failed(t0 + 14s) == 1);
  CHECK(guard.route(caller) == Route::kQuarantine);
  CHECK(guard.route(gone) == Route::kDrop);
}

TEST_CASE("with no failed delivery every address is direct", "[reply_guard]") {
  sbus::ReplyGuard guard;
  const std::uint64_t caller = sbus::ReplyGuard::address("amq.rabbitmq.reply-to.a");
  guard.sent(caller, sbus::ReplyGuard::Clock::now());
  CHECK(guard.route(caller) == Route::kDirect);
  CHECK(sbus::ReplyGuard::address("") != 0);
}
