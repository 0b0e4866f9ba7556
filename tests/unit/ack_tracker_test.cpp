// The acks a worker sends: one multiple ack for the settled run at the
// front, single acks behind a delivery still running, never an ack that
// covers a delivery left for the broker to give to another consumer.
#include "worker/ack_tracker.hpp"

#include <catch2/catch.hpp>

#include <vector>

namespace {

using Acks = std::vector<std::pair<std::uint64_t, bool>>;

Acks due(sbus::AckTracker& tracker) {
  Acks acks;
  for (const sbus::AckTracker::Ack& ack : tracker.take_due()) acks.emplace_back(ack.tag, ack.multiple);
  return acks;
}

}  // namespace

TEST_CASE("handled deliveries at the front are settled by one multiple ack", "[ack]") {
  sbus::AckTracker tracker;
  for (std::uint64_t tag = 1; tag <= 5; ++tag) tracker.track(tag, true);
  tracker.ack(2);
  tracker.ack(1);
  tracker.ack(3);
  CHECK(due(tracker) == Acks{{3, true}});
  CHECK(due(tracker).empty());
  tracker.ack(5);
  tracker.ack(4);
  CHECK(due(tracker) == Acks{{5, true}});
  CHECK(tracker.size() == 0);
}

TEST_CASE("a delivery still running holds back only itself: the ones behind it are acked singly", "[ack]") {
  sbus::AckTracker tracker;
  for (std::uint64_t tag = 1; tag <= 4; ++tag) tracker.track(tag, true);
  tracker.ack(2);
  tracker.ack(4);
  CHECK(due(tracker) == Acks{{2, false}, {4, false}});
  tracker.ack(1);
  CHECK(due(tracker) == Acks{{1, true}});
  tracker.ack(3);
  CHECK(due(tracker) == Acks{{3, true}});
}

TEST_CASE("a rejected delivery may be covered by a multiple ack, a left one never", "[ack]") {
  sbus::AckTracker tracker;
  for (std::uint64_t tag = 1; tag <= 3; ++tag) tracker.track(tag, true);
  tracker.track(4, false);  // arrived while stopping
  tracker.track(5, true);
  CHECK(tracker.reject(1));
  tracker.ack(2);
  tracker.leave(3);
  tracker.ack(5);
  CHECK(due(tracker) == Acks{{2, true}, {5, false}});
  CHECK(tracker.size() == 2);  // 3 and 4 stay unacked
  CHECK_FALSE(tracker.reject(99));
}

TEST_CASE("only rejected deliveries need no ack", "[ack]") {
  sbus::AckTracker tracker;
  tracker.track(7, true);
  CHECK(tracker.reject(7));
  CHECK(due(tracker).empty());
  CHECK(tracker.size() == 0);
}
