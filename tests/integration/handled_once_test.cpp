// Handled once (docs/reliability.md#handled-once), on a real broker: a
// message id sent again is not handled again, a call sent again gets the
// reply of its first run, and an id that cannot be one goes to the error
// queue.
#include <signal.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using sbus_test::ProcessResult;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using sbus_test::TempDir;
using sbus_test::wait_until;
using namespace std::chrono_literals;

namespace {

// test.record as a message service and as an RPC service (test.tally),
// each writing the message ids it runs to a file of its own.
struct Recorders {
  TempDir dir;
  std::string message_ids = dir.file("message_ids.log");
  std::string call_ids = dir.file("call_ids.log");

  std::string services_yaml() const {
    return "  - {name: test.echo, plugin: test}\n"
           "  - {name: test.record, plugin: test, kind: message, options: {file: " +
           dir.file("record.log") + ", id_file: " + message_ids +
           "}}\n"
           "  - {name: test.tally, plugin: test, export: record, kind: rpc, options: {file: " +
           dir.file("calls.log") + ", id_file: " + call_ids + "}}\n";
  }
};

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> lines;
  std::istringstream in(sbus_test::read_file(path));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The broker's connection of the sbus senders that were not there before.
std::vector<std::string> sender_connections() {
  const ProcessResult listed =
      sbus_test::broker_ctl({"list_connections", "-q", "--no-table-headers", "pid", "client_properties"});
  std::vector<std::string> pids;
  std::istringstream lines(listed.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("\"sbus sender\"") != std::string::npos) pids.push_back(line.substr(0, line.find('\t')));
  }
  return pids;
}

}  // namespace

TEST_CASE("the same message id sent three times is handled once and messages without --id are each handled",
          "[handled_once]") {
  Recorders recorders;
  SbusdOptions options;
  options.services_yaml = recorders.services_yaml();
  SbusdProcess sbusd(options);
  const std::vector<std::string> common = sbusd.cli_args();
  for (int i = 0; i < 3; ++i) {
    const ProcessResult sent = sbus_test::run_cli(sbus_test::concat(
        {"send", sbusd.address("test.record"), "{\"order\": 42}", "--id", "charge order 42"}, common));
    INFO(sent.err);
    REQUIRE(sent.exit_code == 0);
  }
  for (int i = 0; i < 2; ++i) {
    REQUIRE(sbus_test::run_cli(sbus_test::concat({"send", sbusd.address("test.record"), "[\"fresh\"]"}, common))
                .exit_code == 0);
  }
  sbus::Sender sender(sbusd.sender_options());
  std::uint64_t duplicates = 0;
  CHECK(wait_until(
      [&] {
        duplicates = sbus_test::service_stat(sbus_test::stats_of(sender, sbusd), "test.record", "duplicates");
        return duplicates == 2 && lines_of(recorders.message_ids).size() == 3;
      },
      10s, 50ms));
  const std::vector<std::string> ids = lines_of(recorders.message_ids);
  INFO("sbusd log:\n" << sbusd.log());
  REQUIRE(ids.size() == 3);
  CHECK(ids[0] == "charge order 42");
  CHECK(ids[1].size() == 34);  // a fresh id: 32 hex digits, "-", a counter
  CHECK(ids[1] != ids[2]);
  CHECK(duplicates == 2);
  const ProcessResult stats = sbus_test::run_cli(sbus_test::concat({"stats", sbusd.node()}, common));
  CHECK(stats.out.find("DUPLICATES") != std::string::npos);
}

TEST_CASE("a call sent again with its message id gets the reply of its first run and is not run again",
          "[handled_once]") {
  Recorders recorders;
  SbusdOptions options;
  options.services_yaml = recorders.services_yaml();
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());
  sbus::CallOptions call;
  call.message_id = "echo once";
  const sbus::CallResult first = sender.call(sbusd.address("test.echo"), "[1]", 5s, call);
  const sbus::CallResult second = sender.call(sbusd.address("test.echo"), "[2]", 5s, call);
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  CHECK(first.message == "[1]");
  CHECK(second.message == "[1]");  // the kept reply, for the second call's own id
  CHECK(second.id != first.id);
  call.message_id = "echo twice";
  CHECK(sender.call(sbusd.address("test.echo"), "[3]", 5s, call).message == "[3]");
  CHECK(sbus_test::service_stat(sbus_test::stats_of(sender, sbusd), "test.echo", "duplicates") == 1);
}

TEST_CASE("a call with --retry whose connection dies while its service runs runs once and the caller gets the reply",
          "[handled_once]") {
  Recorders recorders;
  SbusdOptions options;
  options.services_yaml = recorders.services_yaml();
  SbusdProcess sbusd(options);
  const std::vector<std::string> before = sender_connections();
  sbus::SenderOptions sender_options = sbusd.sender_options();
  sender_options.retry = 2;
  sbus::Sender sender(sender_options);
  REQUIRE(sender.ping(sbusd.node(), 5s));
  // Listed again for a while: rabbitmqctl may time out on a loaded machine.
  std::string mine;
  REQUIRE(wait_until(
      [&] {
        for (const std::string& pid : sender_connections()) {
          if (std::find(before.begin(), before.end(), pid) == before.end()) mine = pid;
        }
        return !mine.empty();
      },
      20s, 500ms));
  sbus::CallResult result;
  std::string error;
  // The service waits for `release` before it records and answers: the
  // caller's connection dies meanwhile, and its retry reaches the worker
  // while the first run still runs, however slow rabbitmqctl is.
  const std::string release = recorders.dir.file("release");
  std::thread caller([&] {
    try {
      sbus::CallOptions call;
      call.message_id = "charge order 43";
      result = sender.call(sbusd.address("test.tally"), "{\"wait_file\": \"" + release + "\"}", 50s, call);
    } catch (const sbus::SenderError& e) {
      error = e.what();
    }
  });
  std::this_thread::sleep_for(500ms);
  const ProcessResult closed = sbus_test::broker_ctl({"close_connection", mine, "closed by the handled-once test"});
  // The sender connects again and sends the call again at once.
  const bool reconnected = wait_until(
      [&] {
        for (const std::string& pid : sender_connections()) {
          if (pid != mine && std::find(before.begin(), before.end(), pid) == before.end()) return true;
        }
        return false;
      },
      20s, 200ms);
  std::this_thread::sleep_for(1s);
  const bool closed_while_running = lines_of(recorders.call_ids).empty();
  { std::ofstream(release) << "go\n"; }
  caller.join();
  INFO("close_connection: " << closed.out << closed.err << "\ncall error: " << error << "\nsbusd log:\n"
                            << sbusd.log());
  CHECK(reconnected);
  REQUIRE(closed.exit_code == 0);
  REQUIRE(closed_while_running);
  REQUIRE(error.empty());
  CHECK(result.ok());
  CHECK(result.message == "true");
  // Any redelivery of the first delivery is answered from the store too.
  std::this_thread::sleep_for(500ms);
  const std::vector<std::string> ran = lines_of(recorders.call_ids);
  REQUIRE(ran.size() == 1);
  CHECK(ran[0] == "charge order 43");
  sbus::Sender other(sbusd.sender_options());
  CHECK(sbus_test::service_stat(sbus_test::stats_of(other, sbusd), "test.tally", "duplicates") >= 1);
}

TEST_CASE("a message id too long or not text goes unrun to the error queue with its error", "[handled_once]") {
  Recorders recorders;
  SbusdOptions options;
  options.services_yaml = recorders.services_yaml();
  SbusdProcess sbusd(options);
  sbus_test::RawAmqp raw;
  const std::string body = sbus_test::py_call_body("m-1", sbus_test::kSecret, "test", "record", "[\"bad id\"]");
  raw.publish("py-servicebus", sbusd.node(), body, {}, {}, {}, {}, std::string(129, 'i'));
  raw.publish("py-servicebus", sbusd.node(), body, {}, {}, {}, {}, std::string("bad\xff\xfe", 5));
  sbus::Sender sender(sbusd.sender_options());
  std::vector<sbus::DeadLetter> letters;
  REQUIRE(wait_until([&] { return (letters = sender.list_errors(sbusd.node())).size() == 2; }, 10s, 100ms));
  CHECK_THAT(letters[0].header("x-sbus-error"), Catch::Contains("message id is 129 bytes, over 128"));
  CHECK_THAT(letters[1].header("x-sbus-error"), Catch::Contains("not UTF-8"));
  CHECK(lines_of(recorders.message_ids).empty());
  SECTION("a call with such an id is answered bad_message_id") {
    const std::string reply_queue = raw.declare_reply_queue();
    raw.publish("py-servicebus", sbusd.node(),
                sbus_test::py_call_body("c-1", sbus_test::kSecret, "test", "echo", "[1]"), reply_queue, "c-1", {}, {},
                std::string(200, 'x'));
    const auto reply = raw.receive(10s);
    REQUIRE(reply);
    CHECK_THAT(reply->body, Catch::Contains("bad_message_id"));
  }
}

TEST_CASE("a store that cannot be opened is reported by sbusd --check and at start with the path and the reason",
          "[handled_once]") {
  TempDir dir;
  // A file where the state folder should be.
  sbus_test::write_file(dir.file("state"), "not a folder");
  SbusdOptions options;
  options.state_dir = dir.file("state");
  options.wait_ready = false;
  SbusdProcess sbusd(options);
  const std::optional<int> exit_code = sbusd.wait_exit(20s);
  const std::string log = sbusd.log();
  INFO(log);
  CHECK(exit_code == 1);
  CHECK_THAT(log, Catch::Contains("state_dir: handled store " + dir.file("state") + "/handled") &&
                      Catch::Contains("Not a directory"));
  const ProcessResult check =
      sbus_test::run_program(SBUS_BUILD_DIR "/bin/sbusd", {"--check", "--config", sbusd.config_path()}, 30s);
  INFO(check.out << check.err);
  CHECK(check.exit_code == 1);
  CHECK_THAT(check.err + check.out, Catch::Contains("state_dir: handled store " + dir.file("state") + "/handled"));
}

TEST_CASE("a corrupted store is moved aside at start with a warning and sbusd serves", "[handled_once]") {
  TempDir dir;
  const std::string state = dir.file("state");
  std::filesystem::create_directories(state + "/handled");
  sbus_test::write_file(state + "/handled/data.mdb", std::string(64 * 1024, 'Z'));
  SbusdOptions options;
  options.state_dir = state;
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());
  sbus::CallOptions call;
  call.message_id = "after the repair";
  CHECK(sender.call(sbusd.address("math.add"), "[1,2]", 5s, call).message == "3");
  CHECK(sender.call(sbusd.address("math.add"), "[1,2]", 5s, call).message == "3");
  CHECK(sbus_test::service_stat(sbus_test::stats_of(sender, sbusd), "math.add", "duplicates") == 1);
  CHECK_THAT(sbusd.log(), Catch::Contains(state + "/handled/data.mdb was corrupted") &&
                              Catch::Contains("moved aside to " + state + "/handled/data.mdb.corrupt-"));
  CHECK(sbusd.stop() == 0);
}

// The short version of the fault test (tests/fault/handled_once_fault_test.cpp
// adds a broker restart and runs 10,000): messages with ids through
// test.record while the worker is SIGKILLed twice and every sbusd process
// once (then started again on the same state_dir). None may be lost, and
// none handled twice: a kill after a handler returned and before its id
// was recorded leaves a mark in the crash journal (a file in state_dir),
// and the redelivery is taken as a duplicate.
TEST_CASE("messages with ids survive SIGKILLs of the worker and of every sbusd process: none lost, none handled twice",
          "[handled_once][fault]") {
  Recorders recorders;
  TempDir state;
  SbusdOptions options;
  options.services_yaml = recorders.services_yaml();
  options.state_dir = state.path();
  options.node = sbus_test::unique_node();
  auto sbusd = std::make_unique<SbusdProcess>(options);
  const std::string redacted = "amqp://guest@127.0.0.1:" + std::to_string(sbus_test::broker_port()) + "/%2f";
  constexpr int kMessages = 3000;
  std::atomic<int> sent{0};
  std::string send_error;
  std::thread sender_thread([&] {
    sbus::Sender sender(sbusd->sender_options());
    for (int i = 0; i < kMessages; ++i) {
      sbus::SendOptions send;
      send.message_id = "m-" + std::to_string(i);
      bool done = false;
      // A send that fails is sent again with the same id, as a careful
      // client does: the store drops the copy if the first one got through.
      for (int attempt = 0; attempt < 20 && !done; ++attempt) {
        try {
          sender.send(options.node + ".test.record", "[" + std::to_string(i) + "]", send);
          done = true;
        } catch (const sbus::SenderError& e) {
          send_error = e.what();
          std::this_thread::sleep_for(100ms);
        }
      }
      if (done) ++sent;
    }
  });
  const auto handled = [&] { return lines_of(recorders.message_ids).size(); };
  int kills = 0;
  for (int k = 1; k <= 2; ++k) {
    REQUIRE(wait_until([&] { return handled() >= static_cast<std::size_t>(kMessages * k / 4); }, 20s, 5ms));
    const pid_t worker = sbus_test::worker_pid_in_log(sbusd->log(), redacted);
    REQUIRE(worker > 0);
    ::kill(worker, SIGKILL);
    ++kills;
    REQUIRE(wait_until([&] { return sbus_test::worker_pid_in_log(sbusd->log(), redacted) != worker; }, 10s, 5ms));
  }
  REQUIRE(wait_until([&] { return handled() >= static_cast<std::size_t>(kMessages * 3 / 4); }, 20s, 5ms));
  // A power loss as far as processes go: the supervisor and its worker at once.
  const pid_t worker = sbus_test::worker_pid_in_log(sbusd->log(), redacted);
  ::kill(worker, SIGKILL);
  sbusd->signal(SIGKILL);
  ++kills;
  sbusd->wait_exit(10s);
  sbusd = std::make_unique<SbusdProcess>(options);
  sender_thread.join();
  CHECK(wait_until([&] { return handled() >= static_cast<std::size_t>(kMessages); }, 20s, 50ms));
  std::this_thread::sleep_for(500ms);  // anything redelivered late
  std::map<std::string, int> runs;
  for (const std::string& id : lines_of(recorders.message_ids)) ++runs[id];
  int lost = 0;
  int twice = 0;
  for (int i = 0; i < kMessages; ++i) {
    const int count = runs["m-" + std::to_string(i)];
    if (count == 0) ++lost;
    if (count > 1) twice += count - 1;
  }
  std::cout << "[handled_once] " << kMessages << " messages with ids, " << kills
            << " SIGKILLs (2 of the worker, 1 of every sbusd process): sent=" << sent << " lost=" << lost
            << " handled_twice=" << twice << std::endl;
  INFO("last send error: " << send_error);
  CHECK(sent == kMessages);
  CHECK(lost == 0);
  // A kill between a handler's return and its record does not run it
  // again (the crash journal's returned marks, kept in state_dir across
  // the SIGKILL of every process).
  CHECK(twice == 0);
}

TEST_CASE("the harness refuses to start sbusd on a config without a state_dir of the test's own", "[state_dir]") {
  // Without one, sbusd writes its handled store into /var/lib/sbus, the
  // system's: every test gives sbusd a temporary folder instead.
  sbus_test::TempDir dir;
  const std::string without = dir.file("without.yaml");
  sbus_test::write_file(without, "node: n\nbrokers: [" + sbus_test::broker_uri() + "]\n");
  const std::string with = dir.file("with.yaml");
  sbus_test::write_file(with, "node: n\nstate_dir: " + dir.file("state") + "\n");
  const std::string sbusd = SBUS_BUILD_DIR "/bin/sbusd";
  CHECK_THROWS_WITH(sbus_test::run_program(sbusd, {"--config", without, "--check"}),
                    Catch::Contains(without + ", which names no state_dir"));
  CHECK_THROWS_WITH(sbus_test::run_program(sbusd, {"--check"}), Catch::Contains("without --config"));
  CHECK_THROWS_AS(sbus_test::require_own_state_dir({"/usr/bin/env", "A=1", sbusd, "-c", without}), std::logic_error);
  CHECK_NOTHROW(sbus_test::require_own_state_dir({sbusd, "--config", with, "--check"}));
  CHECK_NOTHROW(sbus_test::require_own_state_dir({sbusd, "--version"}));
  CHECK_NOTHROW(sbus_test::require_own_state_dir({SBUS_BUILD_DIR "/bin/sbus", "ping", "n"}));
  CHECK_FALSE(std::filesystem::exists(dir.file("state")));
}
