#include "worker/queue_budget.hpp"

#include <catch2/catch.hpp>

using sbus::QueueBudget;

TEST_CASE("a service queue takes jobs up to queue_len and refuses the next") {
  QueueBudget budget(5, 1 << 20);
  for (int i = 0; i < 5; ++i) REQUIRE(budget.take(100));
  CHECK_FALSE(budget.take(100));
  CHECK(budget.jobs() == 5);
  CHECK(budget.bytes() == 500);
  budget.give_back(100);
  CHECK(budget.take(100));
}

TEST_CASE("a service queue refuses a job whose bytes would pass queue_bytes") {
  QueueBudget budget(100, 1000);
  REQUIRE(budget.take(600));
  CHECK_FALSE(budget.take(401));
  CHECK(budget.take(400));
  CHECK_FALSE(budget.take(1));
  CHECK(budget.jobs() == 2);
  CHECK(budget.bytes() == 1000);
}

TEST_CASE("an empty service queue takes a job larger than queue_bytes, then nothing more") {
  QueueBudget budget(100, 1000);
  REQUIRE(budget.take(5000));
  CHECK_FALSE(budget.take(1));
  budget.give_back(5000);
  CHECK(budget.jobs() == 0);
  CHECK(budget.bytes() == 0);
  CHECK(budget.take(1));
}

TEST_CASE("clearing a service queue's budget gives back all its room") {
  QueueBudget budget(2, 1000);
  REQUIRE(budget.take(900));
  REQUIRE(budget.take(100));
  budget.clear();
  CHECK(budget.jobs() == 0);
  CHECK(budget.bytes() == 0);
  CHECK(budget.take(1000));
}
