// What the events tests (events_test.cpp, events_recovery_test.cpp) share:
// the harness's names they use, and the first topic word of a test.
#pragma once

#include <string>

#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::BrokerUsers;
using sbus_test::contains;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using sbus_test::TempDir;
using sbus_test::wait_until;

namespace sbus_test {

// A first topic word no other test uses: every test publishes under one of
// its own, so that the tests sharing the broker's events exchange never see
// each other's events.
inline std::string topic_prefix() {
  return "ev" + unique_node();
}

}  // namespace sbus_test
