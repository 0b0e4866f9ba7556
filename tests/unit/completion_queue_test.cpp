// The queue of outcomes from service threads: the connection thread finds
// them on its next turn, and its poll() is woken only while it sleeps.
#include "worker/completion_queue.hpp"

#include <poll.h>

#include <catch2/catch.hpp>

#include <thread>
#include <vector>

namespace {

bool readable(const sbus::CompletionQueue& queue, int timeout_ms = 0) {
  pollfd fd{queue.fd(), POLLIN, 0};
  return ::poll(&fd, 1, timeout_ms) == 1 && (fd.revents & POLLIN) != 0;
}

sbus::Outcome outcome(std::uint64_t tag) {
  sbus::Outcome out;
  out.envelope.delivery_tag = tag;
  return out;
}

}  // namespace

TEST_CASE("outcomes queued while the connection thread is awake cost no wake-up", "[completions]") {
  sbus::CompletionQueue queue;
  queue.push(outcome(1));
  queue.push(outcome(2));
  CHECK_FALSE(readable(queue));
  // About to sleep: told to take them first.
  CHECK_FALSE(queue.watch());
  std::vector<sbus::Outcome> taken;
  queue.take(&taken);
  REQUIRE(taken.size() == 2);
  CHECK(taken[0].envelope.delivery_tag == 1);
  CHECK(taken[1].envelope.delivery_tag == 2);
  queue.take(&taken);
  CHECK(taken.empty());
}

TEST_CASE("an outcome queued while the connection thread sleeps wakes it once per burst", "[completions]") {
  sbus::CompletionQueue queue;
  REQUIRE(queue.watch());
  std::thread service([&] {
    queue.push(outcome(7));
    queue.push(outcome(8));
  });
  CHECK(readable(queue, 5000));
  service.join();
  queue.unwatch();
  std::vector<sbus::Outcome> taken;
  queue.take(&taken);
  CHECK(taken.size() == 2);
  // The wake-up was consumed with them.
  CHECK_FALSE(readable(queue));
}

TEST_CASE("wake() makes the poll return even with nothing queued, and take() clears it", "[completions]") {
  sbus::CompletionQueue queue;
  queue.wake();
  CHECK(readable(queue));
  std::vector<sbus::Outcome> taken;
  queue.take(&taken);
  CHECK(taken.empty());
  CHECK_FALSE(readable(queue));
  CHECK(queue.watch());
  queue.unwatch();
}
