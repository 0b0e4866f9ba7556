// Transactional handlers on a real broker (docs/plugins.md, "What a handler
// sends"): what a service sends through its ServiceContext's sender while it
// handles a message or a call leaves only once the handler has returned;
// nothing of an attempt that threw leaves; a release that loses the broker
// leaves the incoming delivery unacked, and it comes back.
//
// test.sends (plugins/test) sends to test.record, which writes one line per
// message it gets: {"key": K, "n": I}.
#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"
#include "sends_harness.hpp"

using namespace std::chrono_literals;
using sbus_test::contains;
using sbus_test::count_of;
using sbus_test::lines_of;
using sbus_test::record_line;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using sbus_test::sends_to_record;
using sbus_test::TempDir;
using sbus_test::wait_for_marker;
using sbus_test::wait_until;

TEST_CASE("A handler that sends 3 messages and throws on its first 2 attempts releases exactly 3 messages, once",
          "[held]") {
  TempDir dir;
  const std::string record = dir.file("record");
  SbusdProcess sbusd(sends_to_record(record, 5));
  sbus::Sender sender(sbusd.sender_options());
  sender.send(sbusd.address("test.sends"),
              R"({"to":")" + sbusd.address("test.record") + R"(","key":"k","count":3,"fail":2})");
  wait_for_marker(sender, sbusd, record);

  const std::vector<std::string> lines = lines_of(record);
  INFO("recorded:\n" << sbus_test::read_file(record) << "sbusd log:\n" << sbusd.log());
  CHECK(lines.size() == 4);
  for (int n = 0; n < 3; ++n) CHECK(count_of(lines, record_line("k", n)) == 1);
  CHECK(contains(sbusd.log(), "attempt 2 failed"));
}

TEST_CASE("A call whose handler throws sends nothing and its successful retry sends once before the reply", "[held]") {
  TempDir dir;
  const std::string record = dir.file("record");
  SbusdProcess sbusd(sends_to_record(record, 5));
  sbus::Sender sender(sbusd.sender_options());
  const std::string params = R"({"to":")" + sbusd.address("test.record") + R"(","key":"c","count":2,"fail":1})";
  const sbus::CallResult failed = sender.call(sbusd.address("rpc.sends"), params, 10s);
  CHECK(failed.error_code == "service_failed");
  const sbus::CallResult answered = sender.call(sbusd.address("rpc.sends"), params, 10s);
  CHECK(answered.ok());
  wait_for_marker(sender, sbusd, record);

  const std::vector<std::string> lines = lines_of(record);
  INFO("recorded:\n" << sbus_test::read_file(record));
  CHECK(lines.size() == 3);
  CHECK(count_of(lines, record_line("c", 0)) == 1);
  CHECK(count_of(lines, record_line("c", 1)) == 1);
}

TEST_CASE("A handler that throws every time sends nothing, and its message ends in the error queue", "[held]") {
  TempDir dir;
  const std::string record = dir.file("record");
  SbusdProcess sbusd(sends_to_record(record, 2));
  sbus::Sender sender(sbusd.sender_options());
  sender.send(sbusd.address("test.sends"),
              R"({"to":")" + sbusd.address("test.record") + R"(","key":"never","count":3,"fail":1000})");

  std::vector<sbus::DeadLetter> letters;
  REQUIRE(wait_until([&] { return !(letters = sender.list_errors(sbusd.node())).empty(); }, 20s, 100ms));
  REQUIRE(letters.size() == 1);
  CHECK(letters[0].header("x-sbus-attempts") == "3");
  CHECK(contains(letters[0].header("x-sbus-error"), "attempt 3 of never fails"));
  wait_for_marker(sender, sbusd, record);
  INFO("recorded:\n" << sbus_test::read_file(record));
  CHECK(lines_of(record) == std::vector<std::string>{record_line("end", 0)});
}

TEST_CASE("A message whose held sends the broker refuses is retried, then moved to the error queue with why",
          "[held]") {
  TempDir dir;
  const std::string record = dir.file("record");
  SbusdProcess sbusd(sends_to_record(record, 1));
  sbus::Sender sender(sbusd.sender_options());
  // To a node nobody serves: the broker returns it at the release.
  const std::string nowhere = sbus_test::unique_node() + ".test.record";
  sender.send(sbusd.address("test.sends"), R"({"to":")" + nowhere + R"(","key":"lost"})");

  std::vector<sbus::DeadLetter> letters;
  REQUIRE(wait_until([&] { return !(letters = sender.list_errors(sbusd.node())).empty(); }, 20s, 100ms));
  REQUIRE(letters.size() == 1);
  INFO("x-sbus-error: " << letters[0].header("x-sbus-error"));
  CHECK(contains(letters[0].header("x-sbus-error"), "message 1 of 1 it sent could not be released"));
  CHECK(letters[0].header("x-sbus-attempts") == "2");
}

TEST_CASE("A release that loses its connection leaves the delivery unacked: it comes back and is sent once", "[held]") {
  TempDir dir;
  const std::string record = dir.file("record");
  SbusdProcess sbusd(sends_to_record(record, 5));
  sbus::Sender sender(sbusd.sender_options());
  const std::string to = R"({"to":")" + sbusd.address("test.record") + R"(")";
  // The first release opens the worker's outbox connection.
  sender.send(sbusd.address("test.sends"), to + R"(,"key":"first"})");
  REQUIRE(wait_until([&] { return count_of(lines_of(record), record_line("first", 0)) == 1; }, 20s));

  const std::string broker = "amqp://guest@127.0.0.1:" + std::to_string(sbus_test::broker_port()) + "/%2f";
  const pid_t worker = sbus_test::worker_pid_in_log(sbusd.log(), broker);
  REQUIRE(worker > 0);
  std::string connections;
  const bool closed = sbus_test::close_outbox_connection(worker, &connections);
  INFO("connections:\n" << connections);
  REQUIRE(closed);

  // Its release finds the connection gone: not acked, delivered again, run
  // again and released on a new connection.
  sender.send(sbusd.address("test.sends"), to + R"(,"key":"again"})");
  wait_for_marker(sender, sbusd, record);
  INFO("recorded:\n" << sbus_test::read_file(record) << "sbusd log:\n" << sbusd.log());
  CHECK(count_of(lines_of(record), record_line("again", 0)) == 1);
  CHECK(contains(sbusd.log(), "the delivery is not acked, the broker delivers it again"));
}

TEST_CASE("A chain of two message services whose first worker is killed between its two sends is handled once",
          "[held][once]") {
  TempDir dir;
  const std::string record = dir.file("record");
  SbusdOptions second_options;
  second_options.services_yaml =
      "  - name: test.record\n    plugin: test\n    kind: message\n    options:\n      file: " + record + "\n";
  SbusdProcess second(second_options);
  SbusdOptions first_options;
  first_options.services_yaml = "  - name: test.sends\n    plugin: test\n    kind: message\n";
  SbusdProcess first(first_options);

  // The first message leaves at once (SendOptions::now), the second is
  // held; the handler then hangs, the first time only, so that its worker
  // dies between the two. Run again by the next worker, it sends both
  // again, with the same ids: the second service drops the copy.
  sbus::Sender sender(first.sender_options());
  sbus::SendOptions options;
  options.message_id = "chain-" + first.node();
  sender.send(first.address("test.sends"),
              R"({"to":")" + second.address("test.record") + R"(","key":"chain","count":2,"now_first":true,)" +
                  R"("stall_file":")" + dir.file("stalled") + R"("})",
              options);
  REQUIRE(wait_until([&] { return count_of(lines_of(record), record_line("chain", 0)) == 1; }, 20s));
  const std::string broker = "amqp://guest@127.0.0.1:" + std::to_string(sbus_test::broker_port()) + "/%2f";
  const pid_t worker = sbus_test::worker_pid_in_log(first.log(), broker);
  REQUIRE(worker > 0);
  REQUIRE(::kill(worker, SIGKILL) == 0);

  REQUIRE(wait_until([&] { return count_of(lines_of(record), record_line("chain", 1)) == 1; }, 30s));
  // Past everything the first service sent: a last message down the chain.
  sender.send(first.address("test.sends"), R"({"to":")" + second.address("test.record") + R"(","key":"end"})");
  REQUIRE(wait_until([&] { return count_of(lines_of(record), record_line("end", 0)) == 1; }, 20s));
  const std::vector<std::string> lines = lines_of(record);
  INFO("recorded:\n" << sbus_test::read_file(record) << "first sbusd's log:\n" << first.log());
  CHECK(lines.size() == 3);
  CHECK(count_of(lines, record_line("chain", 0)) == 1);
  CHECK(count_of(lines, record_line("chain", 1)) == 1);
  CHECK(sbus_test::worker_pid_in_log(first.log(), broker) != worker);
}
