// Deferred delivery (docs/reliability.md, "Deferred delivery"): messages
// sent with a delay reach their service no earlier than due, survive a
// broker restart in the middle of their wait, and bad delays are refused
// before anything is sent.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <sbus/sender.hpp>

#include "harness.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using sbus_test::run_cli;
using sbus_test::SbusdProcess;
using Wall = std::chrono::system_clock;

namespace {

// When the record file was last written: the time test.record appended the
// line of the one message this node gets. The kernel stamps files from its
// coarse clock, which lags the real time by up to a tick (4 ms at 250 Hz),
// so a stamp that far before the due time is still on time.
constexpr auto kFileClockTick = 4ms;

Wall::time_point written_at(const std::string& path) {
  struct stat status {};
  REQUIRE(::stat(path.c_str(), &status) == 0);
  return Wall::time_point(std::chrono::duration_cast<Wall::duration>(std::chrono::seconds(status.st_mtim.tv_sec) +
                                                                     std::chrono::nanoseconds(status.st_mtim.tv_nsec)));
}

bool recorded(const SbusdProcess& sbusd, const std::string& text) {
  return sbus_test::read_file(sbusd.record_file()).find(text) != std::string::npos;
}

long long ms_between(Wall::time_point from, Wall::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

// Sends one message with `delay` through the CLI and checks that it was
// recorded, and not before it was due. Returns how late it was.
long long check_deferred(SbusdProcess& sbusd, const std::string& delay_text, std::chrono::milliseconds delay,
                         std::chrono::milliseconds wait, const std::vector<std::string>& more = {}) {
  const std::string marker = "deferred " + delay_text;
  std::vector<std::string> args = sbusd.cli_args();
  for (const std::string& arg : {std::string("send"), sbusd.address("test.record"), "[\"" + marker + "\"]",
                                 std::string("--delay"), delay_text}) {
    args.push_back(arg);
  }
  args.insert(args.end(), more.begin(), more.end());
  const Wall::time_point sent = Wall::now();
  const sbus_test::ProcessResult send = run_cli(args);
  INFO(send.err);
  REQUIRE(send.exit_code == 0);
  const Wall::time_point due = sent + delay;
  REQUIRE(sbus_test::wait_until([&] { return recorded(sbusd, marker); }, delay + wait, 2ms));
  const Wall::time_point arrived = written_at(sbusd.record_file());
  const long long late = ms_between(due, arrived);
  INFO("delay " << delay_text << ": arrived " << late << " ms after due\nsbusd log:\n" << sbusd.log());
  CHECK(arrived >= due - kFileClockTick);
  std::printf("[figure] deferred %s: recorded %lld ms after due\n", delay_text.c_str(), late);
  return late;
}

}  // namespace

TEST_CASE("deferred messages of 50 ms and 1 s reach their service no earlier than due", "[defer]") {
  SbusdProcess sbusd;
  check_deferred(sbusd, "50ms", 50ms, 10s);
  SbusdProcess second;
  check_deferred(second, "1s", 1s, 10s);
}

TEST_CASE("a deferred message's ttl counts from when it is due and does not cut its wait short", "[defer]") {
  // An AMQP expiration of 1 s would end the wait in the first level after
  // 1 s, early; the deadline, due + 1 s, lets it run when it comes.
  SbusdProcess sbusd;
  check_deferred(sbusd, "2s", 2s, 10s, {"--ttl", "1s"});
}

TEST_CASE("a message deferred by 65 s reaches its service no earlier than due", "[defer][slow]") {
  SbusdProcess sbusd;
  check_deferred(sbusd, "65s", 65s, 20s);
}

TEST_CASE("a deferred message is refused with its reason, by the CLI and the library, and nothing is sent", "[defer]") {
  SbusdProcess sbusd;
  const auto cli = [&](std::vector<std::string> tail) {
    std::vector<std::string> args = sbusd.cli_args();
    args.push_back("send");
    args.push_back(sbusd.address("test.record"));
    args.push_back("[\"refused\"]");
    args.insert(args.end(), tail.begin(), tail.end());
    return run_cli(args);
  };
  SECTION("the CLI exits 2 and says why") {
    const struct {
      std::vector<std::string> options;
      const char* said;
    } cases[] = {
        {{"--delay", "-5s"}, "cannot be negative"},
        {{"--delay", "0s"}, "must be positive"},
        {{"--delay", "498d"}, "too long"},
        {{"--delay", "soon"}, "a number and a unit"},
        {{"--at", "2020-01-01T00:00:00Z"}, "in the past"},
        {{"--at", "2099-01-01T00:00:00Z"}, "too far ahead"},
        {{"--at", "24 Dec 2026"}, "not an RFC 3339 time"},
        {{"--delay", "1s", "--at", "2099-01-01T00:00:00Z"}, "not both"},
    };
    for (const auto& refused : cases) {
      const sbus_test::ProcessResult result = cli(refused.options);
      INFO(refused.options[0] << " " << refused.options[1] << ": " << result.err);
      CHECK(result.exit_code == 2);
      CHECK_THAT(result.err, Contains(refused.said));
    }
  }
  SECTION("the library throws kAddress") {
    sbus::Sender sender(sbusd.sender_options());
    const auto refusal = [&](const sbus::SendOptions& options) {
      try {
        sender.send(sbusd.address("test.record"), "[\"refused\"]", options);
      } catch (const sbus::SenderError& e) {
        CHECK(e.kind() == sbus::SenderError::Kind::kAddress);
        return std::string(e.what());
      }
      FAIL("not refused");
      return std::string();
    };
    sbus::SendOptions negative;
    negative.delay = -1ms;
    CHECK_THAT(refusal(negative), Contains("must be positive"));
    sbus::SendOptions too_long;
    too_long.delay = std::chrono::hours(24 * 498);
    CHECK_THAT(refusal(too_long), Contains("too long"));
    sbus::SendOptions past;
    past.at = Wall::now() - 1s;
    CHECK_THAT(refusal(past), Contains("in the past"));
    sbus::SendOptions both;
    both.delay = 1s;
    both.at = Wall::now() + 1s;
    CHECK_THAT(refusal(both), Contains("not both"));
  }
  // Nothing of the refused reached the node: a message sent after them is
  // the only one recorded.
  const sbus_test::ProcessResult marker = [&] {
    std::vector<std::string> args = sbusd.cli_args();
    for (const char* arg : {"send", "", "[\"after the refusals\"]"}) args.push_back(arg);
    args[args.size() - 2] = sbusd.address("test.record");
    return run_cli(args);
  }();
  REQUIRE(marker.exit_code == 0);
  REQUIRE(sbus_test::wait_until([&] { return recorded(sbusd, "after the refusals"); }, 10s));
  std::this_thread::sleep_for(200ms);
  CHECK_FALSE(recorded(sbusd, "refused"));
}

TEST_CASE("a deferred message to a node without a queue is refused before it waits", "[defer]") {
  SbusdProcess sbusd;
  sbus::Sender sender(sbusd.sender_options());
  sbus::SendOptions options;
  options.delay = 1s;
  try {
    sender.send("no-such-node-" + sbusd.node() + ".test.record", "[1]", options);
    FAIL("sent");
  } catch (const sbus::SenderError& e) {
    CHECK(e.kind() == sbus::SenderError::Kind::kUnroutable);
    CHECK_THAT(e.what(), Contains("no queue for node"));
  }
}

TEST_CASE("a deferred message survives a broker restart in the middle of its delay", "[defer][broker-restart]") {
  SbusdProcess sbusd;
  sbus::SendOptions options;
  options.delay = 12s;
  const Wall::time_point due = Wall::now() + *options.delay;
  {
    sbus::Sender sender(sbusd.sender_options());
    sender.send(sbusd.address("test.record"), "[\"through a restart\"]", options);
  }
  std::this_thread::sleep_for(2s);
  // The RabbitMQ application stops and starts again (its Erlang node stays
  // up): every queue is recovered from disk, as after a restart.
  const sbus_test::ProcessResult stopped = sbus_test::broker_ctl({"stop_app"});
  INFO(stopped.out << stopped.err);
  REQUIRE(stopped.exit_code == 0);
  std::this_thread::sleep_for(1s);
  const sbus_test::ProcessResult started = sbus_test::broker_ctl({"start_app"});
  INFO(started.out << started.err);
  REQUIRE(started.exit_code == 0);
  CHECK_FALSE(recorded(sbusd, "through a restart"));
  REQUIRE(sbus_test::wait_until([&] { return recorded(sbusd, "through a restart"); }, 60s, 5ms));
  INFO("sbusd log:\n" << sbusd.log());
  CHECK(written_at(sbusd.record_file()) >= due - kFileClockTick);
}

TEST_CASE("nodes of both queue types share the levels: whichever declared them, a deferred message reaches each",
          "[defer]") {
  sbus_test::SbusdOptions quorum;
  quorum.extra_yaml = "queue_type: quorum\n";
  SbusdProcess quorum_node(quorum);
  SbusdProcess classic_node;
  check_deferred(quorum_node, "50ms", 50ms, 10s);
  check_deferred(classic_node, "50ms", 50ms, 10s);
  // The one that came second found the levels of the other type.
  CHECK((quorum_node.log() + classic_node.log()).find("used as it is") != std::string::npos);
}

TEST_CASE("a deferred message survives a restart of its node's sbusd in the middle of its delay", "[defer][restart]") {
  // Nothing of sbusd is on the way: the message waits in the levels while
  // no sbusd runs, and the node's next sbusd gets it.
  sbus_test::SbusdOptions options;
  options.node = sbus_test::unique_node();
  auto first = std::make_unique<SbusdProcess>(options);
  sbus::SendOptions later;
  later.delay = 1500ms;
  const Wall::time_point due = Wall::now() + *later.delay;
  {
    sbus::Sender sender(first->sender_options());
    sender.send(first->address("test.record"), "[\"through an sbusd restart\"]", later);
  }
  REQUIRE(first->stop() == 0);
  CHECK_FALSE(recorded(*first, "through an sbusd restart"));
  first.reset();
  std::this_thread::sleep_until(due + 500ms);  // due while no sbusd runs
  SbusdProcess second(options);
  REQUIRE(sbus_test::wait_until([&] { return recorded(second, "through an sbusd restart"); }, 15s, 5ms));
  CHECK(written_at(second.record_file()) >= due - kFileClockTick);
}
