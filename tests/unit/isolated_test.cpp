// Isolated services (docs/isolation.md) without a broker: their config
// keys, the channel's frames, and the supervisor's part (start, memory
// limit, restart) on the fake launcher and clock.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/config.hpp"
#include "supervisor/isolated_services.hpp"
#include "supervisor_fakes.hpp"
#include "worker/isolated_channel.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using sbus_test::FakeClock;
using sbus_test::FakeLauncher;
using sbus_test::LogCapture;

namespace {

constexpr const char* kPath = "/etc/sbus/sbusd.yaml";

const std::string kConfig =
    "node: n1\n"                                   // 1
    "brokers:\n"                                   // 2
    "  - amqp://guest:guest@127.0.0.1:5672/%2f\n"  // 3
    "  - amqp://guest:guest@127.0.0.2:5672/%2f\n"  // 4
    "secret: a sixteen byte secret\n"              // 5
    "services:\n"                                  // 6
    "  - name: math.add\n"                         // 7
    "    plugin: math\n"                           // 8
    "  - name: test.crash\n"                       // 9
    "    plugin: test\n"                           // 10
    "    isolate: true\n";                         // 11

bool load(const std::string& yaml, sbus::Config* config, std::vector<std::string>* problems) {
  return sbus::load_config_text(yaml, kPath, {}, config, problems);
}

std::string joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  return text;
}

// Two ends of a stream socket, closed with the object.
struct Pair {
  Pair() { REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0); }
  ~Pair() {
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }
  int fds[2] = {-1, -1};
};

}  // namespace

TEST_CASE("isolate and memory_limit are read, and a bad memory_limit is named with its file and line",
          "[isolate][config]") {
  sbus::Config config;
  std::vector<std::string> problems;
  SECTION("a size with a unit") {
    REQUIRE(load(kConfig + "    memory_limit: 256M\n", &config, &problems));
    CHECK_FALSE(config.services[0].isolate);
    CHECK(config.services[1].isolate);
    CHECK(config.services[1].memory_limit == 256ULL << 20);
  }
  SECTION("bytes") {
    REQUIRE(load(kConfig + "    memory_limit: 1073741824\n", &config, &problems));
    CHECK(config.services[1].memory_limit == 1ULL << 30);
  }
  SECTION("not a size") {
    CHECK_FALSE(load(kConfig + "    memory_limit: lots\n", &config, &problems));
    CHECK_THAT(joined(problems), Contains("/etc/sbus/sbusd.yaml:12: services[1].memory_limit: 'lots' is not a "
                                          "memory size"));
  }
  SECTION("below 1M") {
    CHECK_FALSE(load(kConfig + "    memory_limit: 512K\n", &config, &problems));
    CHECK_THAT(joined(problems), Contains("sbusd.yaml:12: services[1].memory_limit: '512K'"));
  }
  SECTION("without isolate: a warning") {
    const std::string yaml =
        "node: n1\nbrokers: [amqp://127.0.0.1]\nsecret: a sixteen byte secret\nservices:\n"
        "  - name: math.add\n    plugin: math\n    memory_limit: 64M\n";
    REQUIRE(load(yaml, &config, &problems));
    CHECK_THAT(joined(config.warnings),
               Contains("sbusd.yaml:7: services[0].memory_limit: ignored without isolate: true"));
  }
}

TEST_CASE("A request and a reply cross the isolated channel whole", "[isolate][channel]") {
  Pair pair;
  sbus::IsolatedRequest request;
  request.kind = sbus::IsolatedRequest::Kind::kEvent;
  request.id = "id-1";
  request.category = "test";
  request.service = "echo";
  request.topic = "orders.created";
  request.caller = "py-servicebus";
  request.message_id = "5f0c2a7e9b1d4c3a8e6f0a1b2c3d4e5f";
  request.deadline_unix_ms = 1'700'000'000'123;
  request.params = std::string("[1,\"two\\u0000\"]") + std::string(1, '\0');
  REQUIRE(sbus::write_frame(pair.fds[0], sbus::encode(request)));
  std::vector<std::string> fields;
  REQUIRE(sbus::read_frame(pair.fds[1], std::chrono::steady_clock::now() + 1s, &fields) == sbus::ReadResult::kFrame);
  sbus::IsolatedRequest read;
  REQUIRE(sbus::decode(fields, &read));
  CHECK(read.kind == request.kind);
  CHECK(read.id == request.id);
  CHECK(read.topic == request.topic);
  CHECK(read.caller == request.caller);
  CHECK(read.message_id == request.message_id);
  CHECK(read.deadline_unix_ms == request.deadline_unix_ms);
  CHECK(read.params == request.params);

  const sbus::IsolatedReply reply{sbus::IsolatedReply::Status::kFailed, "", "boom"};
  REQUIRE(sbus::write_frame(pair.fds[1], sbus::encode(reply)));
  REQUIRE(sbus::read_frame(pair.fds[0], std::nullopt, &fields) == sbus::ReadResult::kFrame);
  sbus::IsolatedReply answer;
  REQUIRE(sbus::decode(fields, &answer));
  CHECK(answer.status == sbus::IsolatedReply::Status::kFailed);
  CHECK(answer.body == "boom");
  const sbus::IsolatedReply lost{sbus::IsolatedReply::Status::kReleaseLost, "", "connection lost"};
  REQUIRE(sbus::write_frame(pair.fds[1], sbus::encode(lost)));
  REQUIRE(sbus::read_frame(pair.fds[0], std::nullopt, &fields) == sbus::ReadResult::kFrame);
  REQUIRE(sbus::decode(fields, &answer));
  CHECK(answer.status == sbus::IsolatedReply::Status::kReleaseLost);
  // A reply is not a request.
  CHECK_FALSE(sbus::decode(fields, &read));
}

TEST_CASE(
    "A read on the isolated channel times out, a peer gone or a torn frame reads as closed, and a request left unread "
    "as unread",
    "[isolate][channel]") {
  Pair pair;
  std::vector<std::string> fields;
  SECTION("nothing within the deadline") {
    CHECK(sbus::read_frame(pair.fds[0], std::chrono::steady_clock::now() + 50ms, &fields) ==
          sbus::ReadResult::kTimedOut);
  }
  SECTION("the peer closed") {
    ::close(pair.fds[1]);
    pair.fds[1] = -1;
    CHECK(sbus::read_frame(pair.fds[0], std::chrono::steady_clock::now() + 1s, &fields) == sbus::ReadResult::kClosed);
  }
  SECTION("the peer closed without reading what was sent: the request was not run") {
    REQUIRE(sbus::write_frame(pair.fds[0], {"a request"}));
    ::close(pair.fds[1]);
    pair.fds[1] = -1;
    CHECK(sbus::read_frame(pair.fds[0], std::chrono::steady_clock::now() + 1s, &fields) == sbus::ReadResult::kUnread);
  }
  SECTION("a frame cut short by the peer's end") {
    const std::uint32_t size = 100;
    REQUIRE(::write(pair.fds[1], &size, 4) == 4);
    REQUIRE(::write(pair.fds[1], "abc", 3) == 3);
    ::close(pair.fds[1]);
    pair.fds[1] = -1;
    CHECK(sbus::read_frame(pair.fds[0], std::nullopt, &fields) == sbus::ReadResult::kClosed);
  }
  SECTION("a length over the limit") {
    const std::uint32_t size = sbus::kMaxIsolatedFrame + 1;
    REQUIRE(::write(pair.fds[1], &size, 4) == 4);
    CHECK(sbus::read_frame(pair.fds[0], std::nullopt, &fields) == sbus::ReadResult::kClosed);
  }
}

TEST_CASE(
    "The supervisor starts one process per broker and isolated service, and restarts one over its "
    "memory_limit, saying why",
    "[isolate][supervisor]") {
  auto config = std::make_shared<sbus::Config>();
  std::vector<std::string> problems;
  REQUIRE(load(kConfig + "    memory_limit: 64M\n", config.get(), &problems));
  LogCapture log;
  FakeLauncher launcher;
  FakeClock clock;
  std::uint64_t rss = 10ULL << 20;
  sbus::IsolatedServices isolated(launcher, clock, [&](pid_t) { return rss; });
  isolated.start(config, nullptr);
  REQUIRE(launcher.workers_started() == 2);
  REQUIRE(isolated.records().size() == 2);
  for (const sbus::IsolatedRecord& record : isolated.records()) {
    CHECK(launcher.child(record.process.pid).isolated_service == std::optional<std::size_t>(1));
    CHECK(record.service == "test.crash");
  }
  CHECK(isolated.records()[0].process.broker_index == 0);
  CHECK(isolated.records()[1].process.broker_index == 1);
  const pid_t first = isolated.records()[0].process.pid;

  isolated.step(clock.now());
  CHECK(launcher.signals_sent() == 0);

  rss = 65ULL << 20;
  clock.advance(sbus::kMemorySampleInterval);
  isolated.step(clock.now());
  CHECK(launcher.child(first).signals == std::vector<int>{SIGKILL});
  CHECK_THAT(log.text(), Contains("isolated test.crash for amqp://guest@127.0.0.1:5672/%2f (pid " +
                                  std::to_string(first) + ") over its memory_limit: RSS 65 MiB > 64 MiB: SIGKILL"));

  launcher.kill_with(first, SIGKILL);
  REQUIRE(isolated.exited(first, W_EXITCODE(0, SIGKILL), false));
  CHECK(isolated.records()[0].process.state == sbus::WorkerState::kWaitingRestart);
  CHECK_THAT(log.text(), Contains("killed by signal 9 (Killed) (over its memory_limit: RSS 65 MiB > 64 MiB)"));
  CHECK(std::string(isolated.records()[0].process.history.last_exit).find("over its memory_limit") !=
        std::string::npos);
  rss = 10ULL << 20;
  clock.advance(isolated.timeout(clock.now()));
  isolated.step(clock.now());
  const pid_t second = isolated.records()[0].process.pid;
  CHECK(second != first);
  CHECK(launcher.child(second).isolated_service == std::optional<std::size_t>(1));
  CHECK(launcher.child(second).restarts == 1);
  // Not one of its pids: not its to handle.
  CHECK_FALSE(isolated.exited(12345, 0, false));
}

TEST_CASE(
    "An isolated service whose plugin cannot start is not restarted until a reload, and stop signals every process",
    "[isolate][supervisor]") {
  auto config = std::make_shared<sbus::Config>();
  std::vector<std::string> problems;
  REQUIRE(load(kConfig, config.get(), &problems));
  LogCapture log;
  FakeLauncher launcher;
  FakeClock clock;
  sbus::IsolatedServices isolated(launcher, clock);
  isolated.start(config, nullptr);
  const pid_t first = isolated.records()[0].process.pid;
  const pid_t other = isolated.records()[1].process.pid;
  launcher.write(first, std::string(1, sbus::kStatusUnavailable) + "test.crash: start failed\n");
  isolated.read_status();
  launcher.exit_with(first, sbus::kWorkerExitFatal);
  REQUIRE(isolated.exited(first, W_EXITCODE(sbus::kWorkerExitFatal, 0), false));
  CHECK(isolated.records()[0].process.state == sbus::WorkerState::kFailed);
  CHECK_THAT(log.text(), Contains("service unavailable: test.crash: start failed"));
  clock.advance(60s);
  isolated.step(clock.now());
  CHECK(launcher.workers_started() == 2);
  // Until a reload.
  isolated.reload(config, {}, {});
  CHECK(launcher.workers_started() == 3);
  CHECK(isolated.records()[0].process.state == sbus::WorkerState::kRunning);
  const pid_t again = isolated.records()[0].process.pid;
  CHECK(again != first);
  launcher.exit_with(again, 0);
  REQUIRE(isolated.exited(again, 0, true));

  isolated.signal_all(SIGTERM);
  CHECK(launcher.child(other).signals == std::vector<int>{SIGTERM});
  CHECK(isolated.any_alive());
  launcher.exit_with(other, 0);
  REQUIRE(isolated.exited(other, 0, true));
  CHECK_FALSE(isolated.any_alive());
}

TEST_CASE("Stopping sbusd stops the isolated services once its workers are gone", "[isolate][supervisor]") {
  LogCapture log;
  sbus_test::SupervisorRig rig({.brokers = {"amqp://guest:guest@10.0.0.1:5672/%2f"},
                                .services = {"math.add", "test.crash:isolate"},
                                .drain_timeout_seconds = 3});
  REQUIRE(rig.supervisor().isolated().records().size() == 1);
  const pid_t isolated = rig.supervisor().isolated().records()[0].process.pid;
  const pid_t worker = rig.supervisor().workers()[0].pid;
  REQUIRE(rig.launcher.child(isolated).isolated_service == std::optional<std::size_t>(1));
  CHECK_FALSE(rig.launcher.child(worker).isolated_service);

  REQUIRE(rig.stop());
  CHECK(rig.launcher.child(worker).signals == std::vector<int>{SIGTERM});
  // The worker may still pass it a call while it drains.
  CHECK(rig.launcher.child(isolated).signals.empty());
  REQUIRE(rig.after(1s));
  CHECK(rig.launcher.child(isolated).signals.empty());
  rig.launcher.exit_with(worker, 0);
  REQUIRE(rig.turn());
  CHECK_FALSE(rig.launcher.child(isolated).signals.empty());
  CHECK(rig.launcher.child(isolated).signals.front() == SIGTERM);
  rig.launcher.exit_with(isolated, 0);
  CHECK_FALSE(rig.turn());
}

TEST_CASE("A reload keeps an unchanged isolated service's process and replaces one whose entry changed",
          "[isolate][supervisor]") {
  LogCapture log;
  sbus_test::RigConfig config{.brokers = {"amqp://guest:guest@10.0.0.1:5672/%2f"},
                              .services = {"math.add", "test.crash:isolate"},
                              .drain_timeout_seconds = 3};
  sbus_test::SupervisorRig rig(config);
  const pid_t first = rig.supervisor().isolated().records()[0].process.pid;
  config.services = {"math.add", "test.crash:isolate", "test.echo"};
  rig.write_config(config);
  rig.reload_passing();
  REQUIRE(rig.supervisor().isolated().records().size() == 1);
  CHECK(rig.supervisor().isolated().records()[0].process.pid == first);
  CHECK(rig.launcher.child(first).signals.empty());
  // Its index in the new config's services.
  CHECK(rig.supervisor().isolated().records()[0].service_index == 1);

  config.services = {"math.add", "test.echo:isolate"};
  rig.write_config(config);
  rig.reload_passing();
  CHECK(rig.launcher.child(first).signals == std::vector<int>{SIGTERM});
  const auto& records = rig.supervisor().isolated().records();
  REQUIRE(records.size() == 2);
  CHECK(records[1].service == "test.echo");
  CHECK(records[1].process.pid != first);
  CHECK(records[1].process.state == sbus::WorkerState::kRunning);
  rig.launcher.exit_with(first, 0);
  rig.turn();
  CHECK(rig.supervisor().isolated().records().size() == 1);
}
