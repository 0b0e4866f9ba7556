// Deadlines, the worker's side (issue 19): a call or message whose
// x-sbus-deadline has passed is not run, a header that cannot be read is
// no deadline, a backlog of dead calls does not hold up a live one, and a
// chain of calls stops where its budget runs out. Calls are published raw,
// as a sender on the broker would, so that each test sets the header itself.
#include <amqp.h>
#include <signal.h>
#include <sys/types.h>

#include <catch2/catch.hpp>
#include <rapidjson/document.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sbus/sender.hpp>

#include "harness.hpp"
#include "protocol/deadline.hpp"

using namespace std::chrono_literals;
using sbus_test::kSecret;
using sbus_test::py_call_body;
using sbus_test::RawAmqp;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using sbus_test::service_stat;
using sbus_test::stats_of;
using sbus_test::wait_until;
using Clock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

namespace {

constexpr const char* kExchange = "py-servicebus";

std::string deadline_in(SystemClock::duration left) {
  return sbus::deadline_header_value(SystemClock::now() + left);
}

// The error code of a reply body, or "" for a reply that is not an error.
std::string code_of(const std::string& body) {
  if (body.find("status=\"error\"") == std::string::npos) return "";
  const auto code = sbus_test::between(body, "code=\"", "\"");
  return code ? *code : "error";
}

std::uint32_t queue_length(const std::string& queue) {
  RawAmqp raw;
  amqp_queue_declare_ok_t* ok =
      amqp_queue_declare(raw.get(), 1, amqp_cstring_bytes(queue.c_str()), 1, 0, 0, 0, amqp_empty_table);
  raw.check("passive declare of " + queue);
  return ok->message_count;
}

}  // namespace

TEST_CASE("a call whose deadline has passed is answered deadline_exceeded unrun, and sbus.stats counts it",
          "[deadline]") {
  SbusdProcess sbusd;
  sbus::Sender sender(sbusd.sender_options());
  const std::uint64_t handled_before = service_stat(stats_of(sender, sbusd), "test.echo", "handled");
  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();

  // Just past (within max_skew), and an hour past (a sender's clock
  // problem, logged): both expired.
  const std::pair<std::string, std::string> past[] = {{"just-past", deadline_in(-2s)},
                                                      {"an-hour-past", deadline_in(-1h)}};
  for (const auto& [name, header] : past) {
    INFO(name);
    const auto start = Clock::now();
    raw.publish(kExchange, sbusd.node(), py_call_body(name, kSecret, "test", "echo", "[\"late\"]"), reply_queue, name,
                {{std::string(sbus::kDeadlineHeader), header}});
    const auto reply = raw.receive(5s);
    REQUIRE(reply);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    std::cout << "[figure] deadline: a call " << name << " answered in " << took.count() << " ms\n";
    CHECK(reply->correlation_id == name);
    CHECK(code_of(reply->body) == "deadline_exceeded");
    CHECK(took < 2s);
  }

  // What cannot be read is no deadline: served as a call without one.
  const std::string unreadable[] = {"soon", "", "-1", "12345678901234567890", "1.5e12", deadline_in(24h * 365)};
  int served = 0;
  for (const std::string& header : unreadable) {
    INFO("header '" << header << "'");
    const std::string id = "unreadable-" + std::to_string(served);
    raw.publish(kExchange, sbusd.node(), py_call_body(id, kSecret, "test", "echo", "[\"on time\"]"), reply_queue, id,
                {{std::string(sbus::kDeadlineHeader), header}});
    const auto reply = raw.receive(5s);
    REQUIRE(reply);
    CHECK(reply->correlation_id == id);
    CHECK(code_of(reply->body).empty());
    CHECK(reply->body.find("on time") != std::string::npos);
    ++served;
  }

  // A live deadline: served.
  raw.publish(kExchange, sbusd.node(), py_call_body("live", kSecret, "test", "echo", "[\"live\"]"), reply_queue, "live",
              {{std::string(sbus::kDeadlineHeader), deadline_in(10s)}});
  const auto live = raw.receive(5s);
  REQUIRE(live);
  CHECK(code_of(live->body).empty());

  const rapidjson::Document stats = stats_of(sender, sbusd);
  CHECK(service_stat(stats, "test.echo", "expired") == 2);
  CHECK(service_stat(stats, "test.echo", "handled") == handled_before + served + 1);

  // sbus stats shows them in its EXPIRED column.
  std::vector<std::string> args = {"stats", sbusd.node()};
  for (const std::string& arg : sbusd.cli_args()) args.push_back(arg);
  const sbus_test::ProcessResult table = sbus_test::run_cli(args);
  INFO("stdout: " << table.out << "stderr: " << table.err);
  CHECK(table.exit_code == 0);
  std::vector<std::string> header;
  std::string expired_of_echo;
  std::istringstream lines(table.out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> fields;
    for (std::string field; words >> field;) fields.push_back(field);
    if (!fields.empty() && fields[0] == "SERVICE") header = fields;
    const auto column = std::find(header.begin(), header.end(), "EXPIRED");
    const auto at = static_cast<std::size_t>(column - header.begin());
    if (!fields.empty() && fields[0] == "test.echo" && column != header.end() && at < fields.size()) {
      expired_of_echo = fields[at];
    }
  }
  CHECK(expired_of_echo == "2");
  CHECK(sbusd.running());
}

TEST_CASE("a call whose deadline passes while it waits in its service's queue is not started", "[deadline]") {
  SbusdProcess sbusd;
  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  // test.sleep is busy for 1 s; the second call's 300 ms run out meanwhile.
  raw.publish(kExchange, sbusd.node(), py_call_body("busy", kSecret, "test", "sleep", "[1]"), reply_queue, "busy");
  raw.publish(kExchange, sbusd.node(), py_call_body("queued", kSecret, "test", "sleep", "[0]"), reply_queue, "queued",
              {{std::string(sbus::kDeadlineHeader), deadline_in(300ms)}});
  std::map<std::string, std::string> codes;
  for (int i = 0; i < 2; ++i) {
    const auto reply = raw.receive(5s);
    REQUIRE(reply);
    codes[reply->correlation_id] = code_of(reply->body);
    if (reply->correlation_id == "queued")
      CHECK(reply->body.find("waited in the service's queue") != std::string::npos);
  }
  CHECK(codes["busy"].empty());
  CHECK(codes["queued"] == "deadline_exceeded");
  sbus::Sender sender(sbusd.sender_options());
  const rapidjson::Document stats = stats_of(sender, sbusd);
  CHECK(service_stat(stats, "test.sleep", "expired") == 1);
  CHECK(service_stat(stats, "test.sleep", "handled") == 1);
}

TEST_CASE("a message whose deadline has passed is dropped unrun and counted, not dead-lettered", "[deadline]") {
  SbusdProcess sbusd;
  RawAmqp raw;
  raw.publish(kExchange, sbusd.node(), py_call_body("m-late", kSecret, "test", "record", R"({"m":"late"})"), {}, {},
              {{std::string(sbus::kDeadlineHeader), deadline_in(-1s)}});
  raw.publish(kExchange, sbusd.node(), py_call_body("m-live", kSecret, "test", "record", R"({"m":"live"})"), {}, {},
              {{std::string(sbus::kDeadlineHeader), deadline_in(30s)}});
  REQUIRE(wait_until([&] { return sbus_test::read_file(sbusd.record_file()).find("live") != std::string::npos; }, 10s));
  CHECK(sbus_test::read_file(sbusd.record_file()).find("late") == std::string::npos);
  sbus::Sender sender(sbusd.sender_options());
  const rapidjson::Document stats = stats_of(sender, sbusd);
  CHECK(service_stat(stats, "test.record", "expired") == 1);
  CHECK(service_stat(stats, "test.record", "handled") == 1);
  CHECK(queue_length(sbusd.node() + ".error") == 0);
}

TEST_CASE("5000 calls that expired while the worker was stopped are not run, and a fresh call is answered at once",
          "[deadline][backlog]") {
  SbusdOptions options;
  // A stopped worker must not come back to a probe it thinks timed out.
  options.extra_yaml = "ping_interval: 0\n";
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());
  const rapidjson::Document before = stats_of(sender, sbusd);
  const pid_t worker = before["pid"].GetInt();
  const std::uint64_t handled_before = service_stat(before, "test.echo", "handled");
  REQUIRE(worker > 0);

  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  REQUIRE(kill(worker, SIGSTOP) == 0);
  const auto stopped = Clock::now();
  constexpr int kCalls = 5000;
  for (int i = 0; i < kCalls; ++i) {
    const std::string id = "dead-" + std::to_string(i);
    // With the message expiration too, as the sender sets it.
    raw.publish(kExchange, sbusd.node(), py_call_body(id, kSecret, "test", "echo", "[1]"), reply_queue, id,
                {{std::string(sbus::kDeadlineHeader), deadline_in(1s)}}, "1000");
  }
  const auto published = Clock::now();
  std::cout << "[figure] deadline backlog: " << kCalls << " calls of 1 s published in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(published - stopped).count() << " ms\n";
  std::this_thread::sleep_until(stopped + 2s);
  REQUIRE(kill(worker, SIGCONT) == 0);
  const auto resumed = Clock::now();

  const sbus::CallResult fresh = sender.call(sbusd.address("test.echo"), "[\"fresh\"]", 10s);
  const auto fresh_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - resumed);
  CHECK(fresh.ok());
  const bool drained = wait_until([&] { return queue_length(sbusd.node()) == 0; }, 20s, 20ms);
  const auto drain_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - resumed);
  std::cout << "[figure] deadline backlog: fresh call answered " << fresh_ms.count()
            << " ms after SIGCONT; node queue drained " << drain_ms.count() << " ms after SIGCONT\n";
  CHECK(drained);
  CHECK(fresh_ms < 1s);

  // Whatever the worker got of the backlog it answered without running.
  std::map<std::string, int> codes;
  while (const auto reply = raw.receive(300ms)) ++codes[code_of(reply->body)];
  const rapidjson::Document after = stats_of(sender, sbusd);
  std::cout << "[figure] deadline backlog: replies by code:";
  for (const auto& [code, n] : codes) std::cout << " " << (code.empty() ? "ok" : code) << "=" << n;
  std::cout << "; expired in stats " << service_stat(after, "test.echo", "expired") << ", busy "
            << service_stat(after, "test.echo", "refused_busy") << ", broker dropped the rest\n";
  CHECK(codes[""] == 0);
  CHECK(service_stat(after, "test.echo", "handled") == handled_before + 1);  // the fresh call only
  CHECK(service_stat(after, "test.echo", "expired") == static_cast<std::uint64_t>(codes["deadline_exceeded"]));
  CHECK(sbusd.running());
}

TEST_CASE("a chain A -> B -> C with a 2 s budget stops everywhere at about 2 s with deadline_exceeded",
          "[deadline][chain]") {
  SbusdOptions options;
  // Two relays (a relay waits on its own thread for the next hop) and the sleep.
  options.services_yaml =
      "  - name: test.relay\n    plugin: test\n"
      "  - name: test.relay2\n    plugin: test\n    export: relay\n"
      "  - name: test.sleep\n    plugin: test\n";
  SbusdProcess sbusd(options);
  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  const std::string params = R"({"address": ")" + sbusd.address("test.relay2") + R"(", "params": {"address": ")" +
                             sbusd.address("test.sleep") + R"(", "params": [5]}})";
  const auto start = Clock::now();
  raw.publish(kExchange, sbusd.node(), py_call_body("chain", kSecret, "test", "relay", params), reply_queue, "chain",
              {{std::string(sbus::kDeadlineHeader), deadline_in(2s)}});
  const auto reply = raw.receive(8s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  std::cout << "[figure] deadline chain: A -> B -> C (sleep 5 s) with 2 s: "
            << (reply ? code_of(reply->body) : std::string("no reply")) << " after " << took.count() << " ms\n";
  REQUIRE(reply);
  CHECK(code_of(reply->body) == "deadline_exceeded");
  CHECK(took >= 1s);  // the budget less each hop's margin
  CHECK(took < 3s);
  // No hop keeps working long after: the sleep stopped early.
  sbus::Sender sender(sbusd.sender_options());
  const bool idle = wait_until(
      [&] {
        const rapidjson::Document stats = stats_of(sender, sbusd);
        return !stats["services"]["test.sleep"]["running"].GetBool() &&
               !stats["services"]["test.relay"]["running"].GetBool() &&
               !stats["services"]["test.relay2"]["running"].GetBool();
      },
      1s, 50ms);
  const auto idle_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  std::cout << "[figure] deadline chain: every hop idle " << idle_ms.count() << " ms after the call\n";
  CHECK(idle);
  CHECK(idle_ms < 3500ms);
}
