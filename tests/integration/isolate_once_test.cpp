// An isolated service (docs/isolation.md) sees a request as a service in
// the worker does, on a real broker: the message id (Request::message_id()),
// the caller, the deadline; the worker's handled store still drops a
// message id sent again; and what its handler sends is held in its process
// and released only once the handler succeeded, a release that lost the
// broker leaving the delivery unacked.
#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "sends_harness.hpp"
#include "protocol/token.hpp"

using sbus_test::contains;
using sbus_test::count_of;
using sbus_test::lines_of;
using sbus_test::ProcessResult;
using sbus_test::record_line;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using sbus_test::sends_to_record;
using sbus_test::TempDir;
using sbus_test::wait_for_marker;
using sbus_test::wait_until;
using namespace std::chrono_literals;

namespace {

std::int64_t isolated_pid(sbus::Sender& sender, const SbusdProcess& sbusd, const char* service) {
  const rapidjson::Document stats = sbus_test::stats_of(sender, sbusd);
  const auto& entry = stats["services"][service];
  REQUIRE(entry.HasMember("isolated_pid"));
  return entry["isolated_pid"].GetInt64();
}

}  // namespace

TEST_CASE("An isolated service reads each message's id, and one id sent three times runs once",
          "[isolate][handled_once]") {
  TempDir dir;
  const std::string ids = dir.file("ids");
  SbusdOptions options;
  options.services_yaml =
      "  - {name: test.record, plugin: test, kind: message, isolate: true, options: {file: " + dir.file("record") +
      ", id_file: " + ids + "}}\n";
  SbusdProcess sbusd(options);
  const std::vector<std::string> common = sbusd.cli_args();
  for (int i = 0; i < 3; ++i) {
    const ProcessResult sent = sbus_test::run_cli(sbus_test::concat(
        {"send", sbusd.address("test.record"), "{\"order\": 42}", "--id", "charge order 42"}, common));
    INFO(sent.err);
    REQUIRE(sent.exit_code == 0);
  }
  REQUIRE(
      sbus_test::run_cli(sbus_test::concat({"send", sbusd.address("test.record"), "[\"fresh\"]"}, common)).exit_code ==
      0);
  sbus::Sender sender(sbusd.sender_options());
  std::uint64_t duplicates = 0;
  CHECK(wait_until(
      [&] {
        duplicates = sbus_test::service_stat(sbus_test::stats_of(sender, sbusd), "test.record", "duplicates");
        return duplicates == 2 && lines_of(ids).size() == 2;
      },
      15s, 50ms));
  INFO("sbusd log:\n" << sbusd.log());
  const std::vector<std::string> seen = lines_of(ids);
  REQUIRE(seen.size() == 2);
  CHECK(seen[0] == "charge order 42");
  CHECK(seen[1].size() == 34);  // a fresh id: 32 hex digits, "-", a counter
  CHECK(duplicates == 2);
  CHECK(isolated_pid(sender, sbusd, "test.record") > 0);
}

TEST_CASE("An isolated service reads its caller and its call's deadline", "[isolate][deadline]") {
  SbusdOptions options;
  options.services_yaml =
      "  - {name: test.whoami, plugin: test, isolate: true}\n"
      "  - {name: test.sleep, plugin: test, isolate: true}\n";
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());
  const sbus::CallResult who = sender.call(sbusd.address("test.whoami"), "null", 10s);
  REQUIRE(who.ok());
  CHECK(who.message == "\"py-servicebus\"");

  REQUIRE(sender.call(sbusd.address("test.sleep"), "[0]", 10s).ok());
  const std::int64_t pid = isolated_pid(sender, sbusd, "test.sleep");
  // Its caller gives up after 1 s. test.sleep sees the deadline
  // (Request::given_up()) and stops early; had the deadline not reached it,
  // it would sleep on and its process be killed 1 s past the deadline.
  try {
    sender.call(sbusd.address("test.sleep"), "[20]", 1s);
  } catch (const sbus::SenderError&) {
    // No reply in time: expected.
  }
  std::this_thread::sleep_for(3s);
  const sbus::CallResult after = sender.call(sbusd.address("test.sleep"), "[0]", 10s);
  INFO("log:\n" << sbusd.log());
  CHECK(after.ok());
  CHECK(isolated_pid(sender, sbusd, "test.sleep") == pid);
  CHECK_FALSE(contains(sbusd.log(), "past the call's deadline"));
}

TEST_CASE("An isolated handler's sends leave only once it succeeds: 3 messages, 2 failed attempts, each once",
          "[isolate][held]") {
  TempDir dir;
  const std::string record = dir.file("record");
  const std::string ids = dir.file("ids");
  SbusdProcess sbusd(sends_to_record(record, 5, true, ids));
  sbus::Sender sender(sbusd.sender_options());
  sbus::SendOptions with_id;
  with_id.message_id = "k in";
  sender.send(sbusd.address("test.sends"),
              R"({"to":")" + sbusd.address("test.record") + R"(","key":"k","count":3,"fail":2})", with_id);
  wait_for_marker(sender, sbusd, record);
  const std::vector<std::string> lines = lines_of(record);
  INFO("recorded:\n" << sbus_test::read_file(record) << "sbusd log:\n" << sbusd.log());
  CHECK(lines.size() == 4);
  for (int n = 0; n < 3; ++n) CHECK(count_of(lines, record_line("k", n)) == 1);
  CHECK(contains(sbusd.log(), "attempt 2 failed"));
  // Each message it released carries the id derived from the one it
  // handled, its service and its place (outbox.hpp), as a service in the
  // worker sends them: an HMAC-SHA256 keyed with NODE.CATEGORY.SERVICE.
  const std::vector<std::string> seen = lines_of(ids);
  REQUIRE(seen.size() == 4);
  for (int n = 0; n < 3; ++n) {
    const std::string derived =
        sbus::hmac_sha256_hex(sbusd.address("test.sends"), std::string("k in") + '\0' + std::to_string(n));
    CHECK(seen[static_cast<std::size_t>(n)] == derived.substr(0, 32));
  }

  // A call whose handler fails sends nothing; its successful retry sends
  // once, before the reply.
  const std::string params = R"({"to":")" + sbusd.address("test.record") + R"(","key":"c","count":2,"fail":1})";
  CHECK(sender.call(sbusd.address("rpc.sends"), params, 10s).error_code == "service_failed");
  CHECK(sender.call(sbusd.address("rpc.sends"), params, 10s).ok());
  // Released before the reply, and test.record runs its messages in order.
  REQUIRE(wait_until([&] { return count_of(lines_of(record), record_line("c", 1)) == 1; }, 20s));
  CHECK(count_of(lines_of(record), record_line("c", 0)) == 1);
  CHECK(count_of(lines_of(record), record_line("c", 1)) == 1);
}

TEST_CASE("An isolated handler whose release loses the broker leaves the delivery unacked: it comes back, sent once",
          "[isolate][held]") {
  TempDir dir;
  const std::string record = dir.file("record");
  SbusdProcess sbusd(sends_to_record(record, 5, true, dir.file("ids")));
  sbus::Sender sender(sbusd.sender_options());
  const std::string to = R"({"to":")" + sbusd.address("test.record") + R"(")";
  // The first release opens the isolated process's outbox connection.
  sender.send(sbusd.address("test.sends"), to + R"(,"key":"first"})");
  REQUIRE(wait_until([&] { return count_of(lines_of(record), record_line("first", 0)) == 1; }, 20s));

  const std::int64_t process = isolated_pid(sender, sbusd, "test.sends");
  REQUIRE(process > 0);
  std::string connections;
  const bool closed = sbus_test::close_outbox_connection(static_cast<pid_t>(process), &connections);
  INFO("connections:\n" << connections);
  REQUIRE(closed);

  sender.send(sbusd.address("test.sends"), to + R"(,"key":"again"})");
  wait_for_marker(sender, sbusd, record);
  INFO("recorded:\n" << sbus_test::read_file(record) << "sbusd log:\n" << sbusd.log());
  CHECK(count_of(lines_of(record), record_line("again", 0)) == 1);
  CHECK(contains(sbusd.log(), "the delivery is not acked, the broker delivers it again"));
  // Its process did not end for it.
  CHECK(isolated_pid(sender, sbusd, "test.sends") == process);
}

TEST_CASE("A py-servicebus call to an isolated service goes to the node's one queue and is answered from its process",
          "[isolate][wire]") {
  SbusdOptions options;
  options.services_yaml = "  - {name: test.whoami, plugin: test, isolate: true}\n";
  SbusdProcess sbusd(options);
  sbus_test::RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  const std::string id = "py-" + std::to_string(::getpid()) + "-iso";
  const std::string body = "<?xml version=\"1.0\"?>\n<event version=\"1\">\n    <id>" + id + "</id>\n    <token>" +
                           sbus_test::py_token(sbus_test::kSecret, sbus_test::local_date()) +
                           "</token>\n    <catgory>test</catgory>\n    <service>whoami</service>\n"
                           "    <params><![CDATA[null]]></params>\n</event>";
  raw.publish("py-servicebus", sbusd.node(), body, reply_queue, "corr-iso");
  const std::optional<sbus_test::RawAmqp::Message> reply = raw.receive(10s);
  INFO("sbusd log:\n" << sbusd.log());
  REQUIRE(reply);
  INFO("reply: " << reply->body);
  CHECK(reply->correlation_id == "corr-iso");
  CHECK(sbus_test::between(reply->body, "<id>", "</id>") == id);
  CHECK(contains(reply->body, "<message><![CDATA[\"py-servicebus\"]]></message>"));
  // Its process consumes nothing: the node's queue has the worker as its
  // one consumer, and no queue of the service's own exists.
  sbus::Sender sender(sbusd.sender_options());
  REQUIRE(isolated_pid(sender, sbusd, "test.whoami") > 0);
  const ProcessResult queues = sbus_test::broker_ctl({"list_queues", "-q", "--no-table-headers", "name", "consumers"});
  REQUIRE(queues.exit_code == 0);
  INFO("queues:\n" << queues.out);
  CHECK(contains(queues.out, sbusd.node() + "\t1\n"));
  CHECK_FALSE(contains(queues.out, "whoami"));
}
