#include <catch2/catch.hpp>

#include "base/backoff.hpp"

using sbus::Backoff;
using std::chrono::milliseconds;

TEST_CASE("a back-off doubles from its first delay up to its cap", "[backoff]") {
  Backoff backoff({milliseconds(100), milliseconds(1000), 0.0});
  CHECK(backoff.next() == milliseconds(100));
  CHECK(backoff.next() == milliseconds(200));
  CHECK(backoff.next() == milliseconds(400));
  CHECK(backoff.next() == milliseconds(800));
  CHECK(backoff.next() == milliseconds(1000));
  CHECK(backoff.next() == milliseconds(1000));
  CHECK(backoff.failures() == 6);
  CHECK(backoff.delay_for(1000) == milliseconds(1000));  // no overflow far past the cap
}

TEST_CASE("a success starts the back-off over", "[backoff]") {
  Backoff backoff({milliseconds(50), milliseconds(10000), 0.0});
  backoff.next();
  backoff.next();
  CHECK(backoff.next() == milliseconds(200));
  backoff.reset();
  CHECK(backoff.failures() == 0);
  CHECK(backoff.next() == milliseconds(50));
}

TEST_CASE("jitter adds at most its share of the delay and varies", "[backoff]") {
  Backoff backoff({milliseconds(1000), milliseconds(1000), 0.25}, 7);
  bool varied = false;
  milliseconds first_seen{-1};
  for (int i = 0; i < 50; ++i) {
    const milliseconds delay = backoff.next();
    CHECK(delay >= milliseconds(1000));
    CHECK(delay <= milliseconds(1250));
    if (first_seen.count() < 0) first_seen = delay;
    if (delay != first_seen) varied = true;
  }
  CHECK(varied);
}
