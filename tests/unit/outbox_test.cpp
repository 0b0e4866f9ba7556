#include "worker/outbox.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <vector>

namespace {

// A release that records the id it was given, or throws `error`.
sbus::SenderOptions::Release recorder(std::vector<std::string>* ids) {
  return [ids](const std::string& id) { ids->push_back(id); };
}

}  // namespace

TEST_CASE("Derived message ids are the same for the same delivery, service and place, and differ otherwise") {
  const std::string id = sbus::derived_message_id("order-42", "n1.shop.charge", 0);
  CHECK(id.size() == 32);
  CHECK(id == sbus::derived_message_id("order-42", "n1.shop.charge", 0));
  CHECK(id != sbus::derived_message_id("order-42", "n1.shop.charge", 1));
  CHECK(id != sbus::derived_message_id("order-43", "n1.shop.charge", 0));
  CHECK(id != sbus::derived_message_id("order-42", "n1.shop.audit", 0));
  // No two fields run into each other.
  CHECK(sbus::derived_message_id("a1", "s", 1) != sbus::derived_message_id("a", "s", 11));
  CHECK(sbus::fresh_message_id().size() == 32);
  CHECK(sbus::fresh_message_id() != sbus::fresh_message_id());
}

TEST_CASE("An outbox releases what it held, in order, with ids derived from the incoming id") {
  sbus::Outbox outbox("n1.test.sends");
  std::vector<std::string> ids;
  CHECK_FALSE(outbox.hold(recorder(&ids), false));  // not open: sent at once by the sender

  outbox.open("in-1");
  REQUIRE(outbox.hold(recorder(&ids), false));
  REQUIRE(outbox.hold(recorder(&ids), false));
  CHECK(ids.empty());
  const sbus::Outbox::Released released = outbox.release();
  CHECK(released.ok);
  CHECK(released.count == 2);
  CHECK(ids == std::vector<std::string>{sbus::derived_message_id("in-1", "n1.test.sends", 0),
                                        sbus::derived_message_id("in-1", "n1.test.sends", 1)});
  CHECK_FALSE(outbox.hold(recorder(&ids), false));  // closed again

  SECTION("a re-run sends the same ids, `now` ones counted in the order") {
    std::vector<std::string> again;
    outbox.open("in-1");
    REQUIRE(outbox.hold(recorder(&again), true));  // released at once
    CHECK(again.size() == 1);
    REQUIRE(outbox.hold(recorder(&again), false));
    CHECK(outbox.release().ok);
    CHECK(again == ids);
  }
  SECTION("a delivery without an id gives fresh ids") {
    std::vector<std::string> fresh;
    outbox.open("");
    REQUIRE(outbox.hold(recorder(&fresh), false));
    REQUIRE(outbox.hold(recorder(&fresh), false));
    CHECK(outbox.release().ok);
    REQUIRE(fresh.size() == 2);
    CHECK(fresh[0] != fresh[1]);
    CHECK(fresh[0] != ids[0]);
  }
}

TEST_CASE("An outbox drops what a handler that threw held, and takes nothing from other threads") {
  sbus::Outbox outbox("n1.test.sends");
  std::vector<std::string> ids;
  outbox.open("in-1");
  REQUIRE(outbox.hold(recorder(&ids), false));
  outbox.discard();
  CHECK(outbox.release().count == 0);
  CHECK(ids.empty());

  outbox.open("in-2");
  bool taken = true;
  std::thread other([&] { taken = outbox.hold(recorder(&ids), false); });
  other.join();
  CHECK_FALSE(taken);
  CHECK(outbox.release().count == 0);
}

TEST_CASE("An outbox stops at the first failed release and tells a lost broker from a refusal") {
  sbus::Outbox outbox("n1.test.sends");
  std::vector<std::string> ids;
  const auto failing = [](sbus::SenderError::Kind kind) {
    return [kind](const std::string&) { throw sbus::SenderError(kind, "it failed"); };
  };

  outbox.open("in-1");
  REQUIRE(outbox.hold(recorder(&ids), false));
  REQUIRE(outbox.hold(failing(sbus::SenderError::Kind::kConnectionLost), false));
  REQUIRE(outbox.hold(recorder(&ids), false));
  sbus::Outbox::Released released = outbox.release();
  CHECK_FALSE(released.ok);
  CHECK(released.connection_failed);
  CHECK(released.count == 1);
  CHECK(ids.size() == 1);
  CHECK(released.error == "message 2 of 3 it sent could not be released: it failed");

  outbox.open("in-1");
  REQUIRE(outbox.hold(failing(sbus::SenderError::Kind::kUnroutable), false));
  released = outbox.release();
  CHECK_FALSE(released.ok);
  CHECK_FALSE(released.connection_failed);
}
