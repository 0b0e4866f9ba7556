// Isolated services (docs/isolation.md) on a real broker: a crash, a leak
// over memory_limit or a call hung past its deadline in an isolated
// service's process costs that service's call in progress, and no call of
// the services that run in the worker.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <mutex>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace sbus_test;
using namespace std::chrono_literals;

namespace {

// The pid of an isolated service's process as its worker's sbus.stats
// shows it; 0 while none is connected.
std::int64_t isolated_pid(sbus::Sender& sender, const SbusdProcess& sbusd, const char* service) {
  const rapidjson::Document stats = stats_of(sender, sbusd);
  const auto& entry = stats["services"][service];
  REQUIRE(entry.HasMember("isolated_pid"));
  return entry["isolated_pid"].GetInt64();
}

// An sbusd serving `services` (YAML entries of its `services:` list).
SbusdOptions with_services(std::string services) {
  SbusdOptions options;
  options.services_yaml = std::move(services);
  return options;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t count = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

// Calls test.crash "alive?" until its process answers with its pid.
std::int64_t alive_pid(sbus::Sender& sender, const SbusdProcess& sbusd) {
  std::int64_t pid = 0;
  wait_until(
      [&] {
        const sbus::CallResult alive = sender.call(sbusd.address("test.crash"), "\"alive?\"", 10s);
        if (alive.ok()) pid = std::stoll(alive.message);
        return alive.ok();
      },
      15s);
  return pid;
}

// Four senders calling, one call at a time each, math.add and test.echo
// in the worker and iso.echo in an isolated process of its own, every
// answer checked, until stop() (or 20,000 calls each).
class BackgroundCalls {
 public:
  static constexpr const char* kServices =
      "  - name: math.add\n    plugin: math\n"
      "  - name: test.echo\n    plugin: test\n"
      "  - name: iso.echo\n    plugin: test\n    export: echo\n    isolate: true\n";

  explicit BackgroundCalls(const SbusdProcess& sbusd) {
    for (int s = 0; s < 4; ++s) senders_.emplace_back([this, &sbusd, s] { run(sbusd, s); });
  }
  ~BackgroundCalls() { stop(); }

  void stop() {
    done_ = true;
    for (std::thread& sender : senders_) {
      if (sender.joinable()) sender.join();
    }
  }
  int answered() const { return answered_.load(); }
  int failed() const { return failed_.load(); }
  std::string first_failure() {
    std::lock_guard<std::mutex> lock(mutex_);
    return failures_.empty() ? "" : failures_.front();
  }

 private:
  void run(const SbusdProcess& sbusd, int s) {
    sbus::Sender sender(sbusd.sender_options());
    for (int i = 0; !done_.load() && i < 20000; ++i) {
      const int which = (i + s) % 3;
      const std::string n = std::to_string(i);
      std::string error;
      try {
        const sbus::CallResult result =
            which == 0 ? sender.call(sbusd.address("math.add"), "[" + n + "," + std::to_string(s) + "]", 10s)
                       : sender.call(sbusd.address(which == 1 ? "test.echo" : "iso.echo"), "[" + n + "]", 10s);
        const std::string expected = which == 0 ? std::to_string(i + s) : "[" + n + "]";
        if (result.ok() && result.message == expected) {
          ++answered_;
          continue;
        }
        error = result.error_code + ": " + result.message;
      } catch (const std::exception& e) {
        error = e.what();
      }
      ++failed_;
      std::lock_guard<std::mutex> lock(mutex_);
      failures_.push_back(error);
    }
  }

  std::atomic<bool> done_{false};
  std::atomic<int> answered_{0};
  std::atomic<int> failed_{0};
  std::mutex mutex_;
  std::vector<std::string> failures_;
  std::vector<std::thread> senders_;
};

}  // namespace

TEST_CASE("An isolated service that crashes ten times costs the services of its worker no call", "[isolate][crash]") {
  SbusdProcess sbusd(with_services(std::string(BackgroundCalls::kServices) +
                                   "  - name: test.crash\n    plugin: test\n    isolate: true\n"));
  sbus::Sender control(sbusd.sender_options());
  const std::int64_t first = alive_pid(control, sbusd);
  REQUIRE(first > 0);
  CHECK(first != sbusd.pid());
  CHECK(isolated_pid(control, sbusd, "test.crash") == first);
  // `sbus stats` names the process.
  const ProcessResult shown = run_cli(concat({"stats", sbusd.node()}, sbusd.cli_args()));
  INFO(shown.out << shown.err);
  CHECK(shown.out.find("isolated: pid " + std::to_string(first)) != std::string::npos);

  // Four senders call the other services, in the worker and isolated,
  // while test.crash crashes.
  BackgroundCalls load(sbusd);
  std::int64_t pid = first;
  int crashes = 0;
  for (int round = 0; round < 10; ++round) {
    const sbus::CallResult crash = control.call(sbusd.address("test.crash"), "null", 10s);
    INFO("round " << round << ": " << crash.error_code << ": " << crash.message);
    CHECK(crash.error_code == "interrupted");
    crashes += crash.error_code == "interrupted";
    // Back after each crash, in a new process.
    const std::int64_t next = alive_pid(control, sbusd);
    CHECK(next > 0);
    CHECK(next != pid);
    pid = next;
  }
  load.stop();
  const std::string log = sbusd.log();
  INFO("failures: " << load.first_failure() << "\nlog:\n" << log.substr(0, 20000));
  std::cout << "[figure] isolated test.crash crashed " << crashes << " times; " << load.answered()
            << " calls of math.add, test.echo and the isolated iso.echo answered, " << load.failed() << " failed\n";
  CHECK(crashes == 10);
  CHECK(load.failed() == 0);
  CHECK(load.answered() > 0);
  CHECK(count_of(log, "killed by signal 11") == 10);
  // The worker itself never restarted.
  const rapidjson::Document stats = stats_of(control, sbusd);
  CHECK(stats["restarts"].GetUint64() == 0);
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("An isolated service over its memory_limit is restarted and the log says why", "[isolate][memory]") {
  SbusdProcess sbusd(with_services(std::string(BackgroundCalls::kServices) +
                                   "  - name: test.alloc\n    plugin: test\n    isolate: true\n"
                                   "    memory_limit: 64M\n"));
  sbus::Sender sender(sbusd.sender_options());
  BackgroundCalls load(sbusd);
  const sbus::CallResult small = sender.call(sbusd.address("test.alloc"), "1", 10s);
  REQUIRE(small.ok());
  const std::int64_t before = isolated_pid(sender, sbusd, "test.alloc");
  REQUIRE(before > 0);
  // 16 MiB a call: the process passes 64 MiB and is killed, at a sample,
  // while it keeps taking calls (or between them).
  std::string last;
  for (int i = 0; i < 40; ++i) {
    const sbus::CallResult grow = sender.call(sbusd.address("test.alloc"), "16", 10s);
    last = grow.error_code;
    if (!grow.ok()) break;
    std::this_thread::sleep_for(100ms);
  }
  INFO("log:\n" << sbusd.log());
  CHECK((last == "interrupted" || last == "service_unavailable" || last == ""));
  REQUIRE(wait_until([&] { return sbusd.log().find("over its memory_limit: RSS") != std::string::npos; }, 15s));
  // Back, in a new process with a fresh heap.
  REQUIRE(wait_until(
      [&] {
        const sbus::CallResult again = sender.call(sbusd.address("test.alloc"), "1", 10s);
        return again.ok() && again.message == "1";
      },
      15s));
  CHECK(isolated_pid(sender, sbusd, "test.alloc") != before);
  CHECK(sbusd.log().find("killed by signal 9 (Killed) (over its memory_limit") != std::string::npos);
  CHECK(sender.call(sbusd.address("math.add"), "[2,3]", 10s).message == "5");
  load.stop();
  std::cout << "[figure] isolated test.alloc over its memory_limit: " << load.answered()
            << " calls of the other services answered, " << load.failed() << " failed\n";
  INFO("failures: " << load.first_failure());
  CHECK(load.failed() == 0);
  CHECK(load.answered() > 0);
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("An isolated call hung past its deadline costs its process, and the service answers again",
          "[isolate][deadline]") {
  TempDir dir;
  const std::string mark = dir.file("stalled");
  SbusdProcess sbusd(with_services(std::string(BackgroundCalls::kServices) +
                                   "  - name: test.stall_once\n    plugin: test\n    isolate: true\n"
                                   "    options:\n      file: " +
                                   mark + "\n"));
  sbus::Sender sender(sbusd.sender_options());
  BackgroundCalls load(sbusd);
  sbus::Sender other(sbusd.sender_options());
  const auto called = std::chrono::steady_clock::now();
  // The caller gives up after 2 s (no reply): the call hangs in the plugin.
  std::string hung;
  try {
    hung = sender.call(sbusd.address("test.stall_once"), "null", 2s).error_code;
  } catch (const sbus::SenderError& e) {
    hung = e.what();
  }
  CHECK(hung.find("no reply") != std::string::npos);
  // Meanwhile the worker's own services answer.
  CHECK(other.call(sbusd.address("math.add"), "[1,2]", 10s).message == "3");
  REQUIRE(wait_until([&] { return sbusd.log().find("past the call's deadline") != std::string::npos; }, 10s));
  const sbus::CallResult again = sender.call(sbusd.address("test.stall_once"), "null", 15s);
  INFO("log:\n" << sbusd.log());
  CHECK(again.ok());
  CHECK(again.message == "\"again\"");
  CHECK(std::chrono::steady_clock::now() - called < 25s);
  CHECK(sbusd.log().find("killed by signal 9") != std::string::npos);
  load.stop();
  std::cout << "[figure] isolated test.stall_once hung past its deadline: " << load.answered()
            << " calls of the other services answered, " << load.failed() << " failed\n";
  INFO("failures: " << load.first_failure());
  CHECK(load.failed() == 0);
  CHECK(load.answered() > 0);
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("A message that crashes its isolated service's process is retried, then moved to the error queue",
          "[isolate][crash][message]") {
  SbusdOptions options = with_services(
      "  - name: math.add\n    plugin: math\n"
      "  - name: test.crash_message\n    plugin: test\n    kind: message\n    isolate: true\n");
  options.extra_yaml = "max_retries: 1\n";
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());
  sender.send(sbusd.address("test.crash_message"), "[7]");
  std::vector<sbus::DeadLetter> letters;
  INFO("log:\n" << sbusd.log());
  REQUIRE(wait_until([&] { return !(letters = sender.list_errors(sbusd.node())).empty(); }, 20s, 100ms));
  REQUIRE(letters.size() == 1);
  std::cout << "[figure] isolated test.crash_message: x-sbus-error: " << letters[0].header("x-sbus-error") << "\n";
  CHECK(letters[0].body.find("[7]") != std::string::npos);
  CHECK(letters[0].header("x-sbus-service") == "test.crash_message");
  CHECK(letters[0].header("x-sbus-error").find("ended during the call") != std::string::npos);
  // Run twice (max_retries 1), each time in a process of its own.
  CHECK(count_of(sbusd.log(), "killed by signal 11") == 2);
  // The worker never crashed: it answers at once, and was never restarted.
  CHECK(sender.call(sbusd.address("math.add"), "[1,1]", 10s).message == "2");
  CHECK(stats_of(sender, sbusd)["restarts"].GetUint64() == 0);
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("A reload that isolates a service starts its process, and calls to it keep being answered",
          "[isolate][reload]") {
  SbusdProcess sbusd(
      with_services("  - name: math.add\n    plugin: math\n"
                    "  - name: test.echo\n    plugin: test\n"));
  sbus::Sender sender(sbusd.sender_options());
  REQUIRE(sender.call(sbusd.address("test.echo"), "[1]", 10s).message == "[1]");
  CHECK_FALSE(stats_of(sender, sbusd)["services"]["test.echo"].HasMember("isolated_pid"));
  std::string yaml = read_file(sbusd.config_path());
  const std::string entry = "  - name: test.echo\n    plugin: test\n";
  REQUIRE(yaml.find(entry) != std::string::npos);
  yaml.replace(yaml.find(entry), entry.size(), entry + "    isolate: true\n");
  write_file(sbusd.config_path(), yaml);
  sbusd.signal(SIGHUP);
  // Answered throughout; then by the isolated process.
  std::int64_t pid = 0;
  int calls = 0;
  const bool isolated = wait_until(
      [&] {
        const sbus::CallResult echo = sender.call(sbusd.address("test.echo"), "[" + std::to_string(++calls) + "]", 10s);
        REQUIRE(echo.ok());
        CHECK(echo.message == "[" + std::to_string(calls) + "]");
        const rapidjson::Document stats = stats_of(sender, sbusd);
        const auto& service = stats["services"]["test.echo"];
        pid = service.HasMember("isolated_pid") ? service["isolated_pid"].GetInt64() : 0;
        return pid > 0;
      },
      20s);
  INFO("log:\n" << sbusd.log());
  REQUIRE(isolated);
  CHECK(sbusd.log().find("isolated test.echo for ") != std::string::npos);
  CHECK(sbusd.log().find("started, pid " + std::to_string(pid)) != std::string::npos);
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("An isolated event service records the events of its topics in its own process", "[isolate][events]") {
  TempDir dir;
  const std::string file = dir.file("events.jsonl");
  const std::string topic = "iso" + std::to_string(::getpid()) + ".created";
  SbusdProcess sbusd(
      with_services("  - name: math.add\n    plugin: math\n"
                    "  - name: audit.record\n    plugin: test\n    export: record\n"
                    "    kind: event\n    isolate: true\n    topics: [\"" +
                    topic + "\"]\n    options:\n      file: " + file + "\n"));
  sbus::Sender sender(sbusd.sender_options());
  REQUIRE(sender.publish(topic, "{\"n\":1}"));
  INFO("log:\n" << sbusd.log());
  REQUIRE(wait_until([&] { return read_file(file).find("\"n\":1") != std::string::npos; }, 10s));
  CHECK(read_file(file).find(topic) != std::string::npos);
  CHECK(isolated_pid(sender, sbusd, "audit.record") > 0);
  CHECK(isolated_pid(sender, sbusd, "audit.record") != sbusd.pid());
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("An isolated service whose plugin cannot start is answered service_unavailable, and the others serve",
          "[isolate][unavailable]") {
  // test.record without its `file` option: its start() fails, in its process.
  SbusdProcess sbusd(
      with_services("  - name: math.add\n    plugin: math\n"
                    "  - name: test.record\n    plugin: test\n    isolate: true\n"));
  sbus::Sender sender(sbusd.sender_options());
  REQUIRE(wait_until([&] { return sbusd.log().find("test.record needs options") != std::string::npos; }, 10s));
  const auto called = std::chrono::steady_clock::now();
  const sbus::CallResult call = sender.call(sbusd.address("test.record"), "[1]", 15s);
  INFO("log:\n" << sbusd.log());
  CHECK(call.error_code == "service_unavailable");
  CHECK(call.message.find("no process listening") != std::string::npos);
  // It waited for a process (kConnectWait), not for the caller's deadline.
  CHECK(std::chrono::steady_clock::now() - called < 12s);
  CHECK(sender.call(sbusd.address("math.add"), "[2,2]", 10s).message == "4");
  CHECK(isolated_pid(sender, sbusd, "test.record") == 0);
  CHECK(stats_of(sender, sbusd)["restarts"].GetUint64() == 0);
  CHECK(sbusd.stop() == 0);
}
