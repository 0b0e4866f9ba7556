// The heap is given back once large bodies stop coming, not after each one:
// HeapTrim with a counting trim and times of the test's choosing.
#include "worker/heap_trim.hpp"

#include <catch2/catch.hpp>

#include <chrono>

namespace {

using namespace std::chrono_literals;
using Clock = sbus::HeapTrim::Clock;

int trims = 0;
void count_trim() {
  ++trims;
}

}  // namespace

TEST_CASE("the heap is trimmed once, after a run of large bodies has been quiet", "[heap_trim]") {
  trims = 0;
  sbus::HeapTrim heap(200ms, count_trim);
  const Clock::time_point t0 = Clock::now();
  SECTION("nothing noted: nothing due, no trim") {
    CHECK_FALSE(heap.due().has_value());
    CHECK_FALSE(heap.trim_if_due(t0 + 1h));
    CHECK(trims == 0);
  }
  SECTION("a run of large bodies: due after the last one, trimmed once") {
    heap.note_large(t0);
    heap.note_large(t0 + 150ms);
    REQUIRE(heap.due().has_value());
    CHECK(*heap.due() == t0 + 350ms);
    CHECK_FALSE(heap.trim_if_due(t0 + 300ms));  // 150 ms after the last: the run may go on
    CHECK(trims == 0);
    CHECK(heap.trim_if_due(t0 + 350ms));
    CHECK(trims == 1);
    CHECK_FALSE(heap.due().has_value());
    CHECK_FALSE(heap.trim_if_due(t0 + 1h));
    CHECK(trims == 1);
  }
  SECTION("a large body after the trim makes another one due") {
    heap.note_large(t0);
    CHECK(heap.trim_if_due(t0 + 200ms));
    heap.note_large(t0 + 1s);
    CHECK_FALSE(heap.trim_if_due(t0 + 1s + 199ms));
    CHECK(heap.trim_if_due(t0 + 1s + 200ms));
    CHECK(trims == 2);
  }
}
