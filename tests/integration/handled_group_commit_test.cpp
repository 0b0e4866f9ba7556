// Group commit of the handled store (docs/reliability.md#handled-once): a
// lone delivery with a message id is answered and acked before its record
// is committed (handled_commit_ms). These tests take a window far longer
// than any step of theirs, so that what they send and kill falls in it: a
// copy of the delivery in the window is a duplicate with the first's
// reply, and a worker killed in it leaves the ids to the crash journal.
#include <signal.h>

#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"

using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using sbus_test::TempDir;
using sbus_test::wait_until;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> lines;
  std::istringstream in(sbus_test::read_file(path));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// test.echo, and test.record writing the message ids it runs to `ids`;
// records wait up to 10 s to be committed.
SbusdOptions window_options(const TempDir& dir, const std::string& ids) {
  SbusdOptions options;
  options.services_yaml =
      "  - {name: test.echo, plugin: test}\n"
      "  - {name: test.record, plugin: test, kind: message, options: {file: " +
      dir.file("record.log") + ", id_file: " + ids + "}}\n";
  options.extra_yaml = "handled_commit_ms: 10000\n";
  options.state_dir = dir.file("state");
  options.node = sbus_test::unique_node();
  return options;
}

}  // namespace

TEST_CASE("a call and a message sent twice back to back, inside the commit window, are handled once",
          "[handled_once][group_commit]") {
  TempDir dir;
  const std::string ids = dir.file("ids.log");
  SbusdProcess sbusd(window_options(dir, ids));
  sbus::Sender sender(sbusd.sender_options());
  sbus::CallOptions call;
  call.message_id = "echo in the window";
  const sbus::CallResult first = sender.call(sbusd.address("test.echo"), "[1]", 5s, call);
  const sbus::CallResult second = sender.call(sbusd.address("test.echo"), "[2]", 5s, call);
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  CHECK(first.message == "[1]");
  CHECK(second.message == "[1]");  // the reply kept in memory, not a second run
  sbus::SendOptions send;
  send.message_id = "record in the window";
  sender.send(sbusd.address("test.record"), "[1]", send);
  sender.send(sbusd.address("test.record"), "[2]", send);
  CHECK(wait_until(
      [&] { return sbus_test::service_stat(sbus_test::stats_of(sender, sbusd), "test.record", "duplicates") == 1; },
      10s, 20ms));
  CHECK(lines_of(ids) == std::vector<std::string>{"record in the window"});
  CHECK(sbus_test::service_stat(sbus_test::stats_of(sender, sbusd), "test.echo", "duplicates") == 1);
  // After the window, from the store: the same.
  CHECK(sbusd.stop() == 0);  // a stop commits what waits
  SbusdProcess again(window_options(dir, ids));
  sbus::Sender later(again.sender_options());
  CHECK(later.call(again.address("test.echo"), "[3]", 5s, call).message == "[1]");
  later.send(again.address("test.record"), "[3]", send);
  CHECK(wait_until(
      [&] { return sbus_test::service_stat(sbus_test::stats_of(later, again), "test.record", "duplicates") == 1; }, 10s,
      20ms));
  CHECK(lines_of(ids).size() == 1);
}

TEST_CASE("a worker SIGKILLed after lone handlers returned, before their commit: their copies are not handled again",
          "[handled_once][group_commit][fault]") {
  TempDir dir;
  const std::string ids = dir.file("ids.log");
  SbusdProcess sbusd(window_options(dir, ids));
  const std::string redacted = "amqp://guest@127.0.0.1:" + std::to_string(sbus_test::broker_port()) + "/%2f";
  sbus::Sender sender(sbusd.sender_options());
  sbus::CallOptions call;
  call.message_id = "echo before the kill";
  REQUIRE(sender.call(sbusd.address("test.echo"), "[1]", 5s, call).message == "[1]");
  sbus::SendOptions send;
  send.message_id = "record before the kill";
  sender.send(sbusd.address("test.record"), "[1]", send);
  REQUIRE(wait_until([&] { return lines_of(ids).size() == 1; }, 10s, 5ms));
  const pid_t worker = sbus_test::worker_pid_in_log(sbusd.log(), redacted);
  REQUIRE(worker > 0);
  ::kill(worker, SIGKILL);
  REQUIRE(wait_until([&] { return sbus_test::worker_pid_in_log(sbusd.log(), redacted) != worker; }, 10s, 5ms));
  INFO("sbusd log:\n" << sbusd.log());
  // Both records were still waiting: their marks went to the ring.
  CHECK_THAT(sbusd.log(), Catch::Contains("died after 2 handler(s) with a message id returned"));
  sender.send(sbusd.address("test.record"), "[2]", send);
  const sbus::CallResult copy = sender.call(sbusd.address("test.echo"), "[2]", 10s, call);
  // The reply went with the worker; the call is not run again.
  CHECK(copy.error_code == "reply_not_kept");
  CHECK(wait_until(
      [&] { return sbus_test::service_stat(sbus_test::stats_of(sender, sbusd), "test.record", "duplicates") == 1; },
      10s, 20ms));
  CHECK(lines_of(ids) == std::vector<std::string>{"record before the kill"});
}
