// The announcements of the agent watch (worker/peer_watch.hpp), as they go
// over the wire: an announcement names its node, a discovery request says
// so, and announcements of sbusd before discovery (no node) still read.
#include <catch2/catch.hpp>

#include "worker/peer_watch.hpp"

using sbus::PeerWatch;

TEST_CASE("An announcement names its node and reads back as written", "[peer_watch]") {
  const PeerWatch::Announcement written{"i1", "NODE-01", "host\"1", 42, {"math.add", "test.record"}, true, false};
  PeerWatch::Announcement read;
  REQUIRE(PeerWatch::decode(PeerWatch::encode(written), &read));
  CHECK(read.instance == "i1");
  CHECK(read.node == "NODE-01");
  CHECK(read.host == "host\"1");
  CHECK(read.pid == 42);
  CHECK(read.services == std::vector<std::string>{"math.add", "test.record"});
  CHECK(read.answer);
  CHECK_FALSE(read.discover);
}

TEST_CASE("A discovery request is told from an agent's announcement", "[peer_watch]") {
  PeerWatch::Announcement request{"sbus-discover-7", "", "", 7, {}, false, true};
  PeerWatch::Announcement read;
  REQUIRE(PeerWatch::decode(PeerWatch::encode(request), &read));
  CHECK(read.discover);
  CHECK(read.node.empty());
  SECTION("only a true boolean makes a request") {
    REQUIRE(PeerWatch::decode(R"({"instance":"x","host":"h","pid":1,"services":[],"answer":false,"discover":"yes"})",
                              &read));
    CHECK_FALSE(read.discover);
  }
}

TEST_CASE("An announcement of an sbusd before discovery, without a node, still reads", "[peer_watch]") {
  PeerWatch::Announcement read;
  read.node = "left over";
  REQUIRE(PeerWatch::decode(R"({"instance":"x","host":"h","pid":1,"services":["a.b"],"answer":false})", &read));
  CHECK(read.node.empty());
  CHECK_FALSE(read.discover);
  CHECK(read.services == std::vector<std::string>{"a.b"});
}
