#include "worker/delivery_window.hpp"

#include <catch2/catch.hpp>

using sbus::DeliveryWindow;

TEST_CASE("the delivery window asks the broker for prefetch plus one slot per service and one") {
  CHECK(DeliveryWindow::size_for(64, 6) == 71);
  CHECK(DeliveryWindow::size_for(65535, 6) == 65535);
  CHECK(DeliveryWindow(64, 6).size() == 71);
}

TEST_CASE("one service alone holds more than prefetch deliveries, as many as the window held before") {
  DeliveryWindow window(64, 6);
  std::size_t taken = 0;
  while (window.admits(0)) {
    window.take(0);
    ++taken;
  }
  CHECK(taken == 65);  // 71 less a slot for each of the 5 idle services and one
  CHECK(window.held() == 65);
}

TEST_CASE("a service holding its share leaves a slot for each idle service and one for the worker") {
  DeliveryWindow window(8, 3);  // window 12
  while (window.admits(0)) window.take(0);
  CHECK(window.held(0) == 9);  // 12 - 2 idle - 1
  CHECK(window.admits(1));
  window.take(1);
  CHECK_FALSE(window.admits(1));  // service 2 keeps its slot
  CHECK(window.admits(2));
  window.take(2);
  CHECK_FALSE(window.admits(2));
  CHECK(window.held() == 11);  // one slot stays free for the worker's own answers
}

TEST_CASE("deliveries given back make room again, and a service that holds none becomes idle") {
  DeliveryWindow window(4, 2);  // window 7
  while (window.admits(0)) window.take(0);
  CHECK(window.held(0) == 5);
  window.give_back(0, 5);
  CHECK(window.held() == 0);
  while (window.admits(1)) window.take(1);
  CHECK(window.held(1) == 5);
  window.give_back(1, 0);
  CHECK(window.held(1) == 5);
  CHECK(window.admits(0));
}
