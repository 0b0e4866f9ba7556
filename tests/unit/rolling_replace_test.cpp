// A reload's rolling replacement of a worker whose plugin file changed:
// the decision alone (next_replace_step), the content stamps of plugin files
// (plugin_stamps.hpp), and the Supervisor on fakes (supervisor_fakes.hpp)
// refusing a new worker that gave up. tests/integration/hot_upgrade_test.cpp
// runs hot upgrades with real processes and a real broker.
#include "supervisor/rolling_replace.hpp"

#include <sys/stat.h>
#include <utime.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "supervisor/plugin_stamps.hpp"
#include "supervisor_fakes.hpp"

using namespace std::chrono_literals;
using sbus::ReplaceStep;
using sbus::WorkerRecord;
using sbus::WorkerState;
using sbus_test::SupervisorRig;

namespace {

const std::string kA = "amqp://guest:guest@10.0.0.1:5672/%2f";
const std::string kRedactedA = "amqp://guest@10.0.0.1:5672/%2f";

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Sets the file's modification time to `seconds` since the epoch.
void set_mtime(const std::string& path, time_t seconds) {
  const utimbuf times{seconds, seconds};
  REQUIRE(::utime(path.c_str(), &times) == 0);
}

sbus::Config config_with_plugin(const std::string& path) {
  sbus::Config config;
  sbus::ServiceConfig service;
  service.name = "version.which";
  service.plugin_path = path;
  config.services.push_back(service);
  return config;
}

}  // namespace

TEST_CASE("a rolling replacement waits for the new worker, swaps once it consumes, and refuses one that gave up",
          "[supervisor][reload][hot_upgrade]") {
  WorkerRecord fresh;
  fresh.pid = 42;
  fresh.state = WorkerState::kRunning;
  SECTION("starting, not connected: wait, until the deadline") {
    CHECK(sbus::next_replace_step(&fresh, false) == ReplaceStep::kWait);
    CHECK(sbus::next_replace_step(&fresh, true) == ReplaceStep::kSwapLate);
  }
  SECTION("connected (every service started): swap") {
    fresh.connected = true;
    CHECK(sbus::next_replace_step(&fresh, false) == ReplaceStep::kSwap);
  }
  SECTION("given up (fatal exit) or gone: refused, whatever the deadline") {
    fresh.state = WorkerState::kFailed;
    fresh.pid = -1;
    CHECK(sbus::next_replace_step(&fresh, false) == ReplaceStep::kRefuse);
    CHECK(sbus::next_replace_step(&fresh, true) == ReplaceStep::kRefuse);
    CHECK(sbus::next_replace_step(nullptr, false) == ReplaceStep::kRefuse);
  }
  SECTION("crashed and waiting for its restart: waited for, as any worker") {
    fresh.state = WorkerState::kWaitingRestart;
    fresh.pid = -1;
    CHECK(sbus::next_replace_step(&fresh, false) == ReplaceStep::kWait);
  }
}

TEST_CASE("why a replacement failed names how it ended and each service that could not start",
          "[supervisor][reload][hot_upgrade]") {
  WorkerRecord fresh;
  CHECK(sbus::replace_failure(nullptr).empty());
  CHECK(sbus::replace_failure(&fresh).empty());
  std::snprintf(fresh.history.last_exit, sizeof(fresh.history.last_exit), "exited with code 2");
  fresh.unavailable = {"version.which: start failed: no", "math.add: cannot load: undefined symbol: f"};
  CHECK(sbus::replace_failure(&fresh) ==
        "exited with code 2; version.which: start failed: no; math.add: cannot load: undefined symbol: f");
}

TEST_CASE("a plugin file counts as changed when its bytes change, not when only its time does",
          "[supervisor][reload][hot_upgrade]") {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("sbus-stamps-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  const std::string plugin = dir + "/version.so";
  write_bytes(plugin, "build one");
  set_mtime(plugin, 1'000'000);
  const sbus::Config config = config_with_plugin(plugin);
  const sbus::PluginStamps before = sbus::stamp_plugins(config);
  REQUIRE(before.count(plugin) == 1);
  CHECK(before.at(plugin).size == 9);

  SECTION("touched, or installed again with the same bytes: unchanged") {
    set_mtime(plugin, 2'000'000);
    CHECK(sbus::changed_plugins(before, sbus::stamp_plugins(config)).empty());
    write_bytes(plugin, "build one");
    CHECK(sbus::stamp_plugins(config) == before);
  }
  SECTION("other bytes of the same size with the same time (cp --preserve): changed") {
    write_bytes(plugin, "build two");
    set_mtime(plugin, 1'000'000);
    CHECK(sbus::changed_plugins(before, sbus::stamp_plugins(config)) == std::vector<std::string>{plugin});
  }
  SECTION("gone: changed") {
    std::filesystem::remove(plugin);
    const sbus::PluginStamps after = sbus::stamp_plugins(config);
    CHECK(after.empty());
    CHECK(sbus::changed_plugins(before, after) == std::vector<std::string>{plugin});
    CHECK(sbus::changed_plugins(after, before) == std::vector<std::string>{plugin});
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE(
    "a replacement worker is started strict, and one that gives up is refused with its reason and tried "
    "again at the next reload",
    "[supervisor][reload][hot_upgrade]") {
  SupervisorRig rig;
  const pid_t old = rig.launcher.worker_of(kA).pid;
  CHECK_FALSE(rig.launcher.child(old).replacing);  // a first start serves what it can
  rig.launcher.connect(old);
  rig.turn();
  rig.write_config({.services = {"math.add", "test.echo"}});
  rig.reload_passing();
  const pid_t fresh = rig.launcher.last().pid;
  REQUIRE(fresh != old);
  CHECK(rig.launcher.last().replacing);

  SECTION("it gave up: the old worker keeps serving, the log says why") {
    rig.launcher.write(fresh, std::string(1, sbus::kStatusUnavailable) + "test.echo: start failed: boom\n");
    rig.launcher.exit_with(fresh, sbus::kWorkerExitFatal);
    rig.turn();
    CHECK(rig.launcher.child(old).signals.empty());
    CHECK(rig.log.count("replacement worker for " + kRedactedA +
                        " failed to start; the previous worker keeps serving (exited with code 2; test.echo: start "
                        "failed: boom)") == 1);
    // The same files again: replaced again, not taken as already running.
    rig.reload_passing();
    CHECK(rig.log.count("1 worker(s) to replace one at a time") == 2);
    CHECK(rig.launcher.last().pid != fresh);
    CHECK(rig.launcher.last().replacing);
  }
  SECTION("it consumes: the old one drains, and the new one is strict no more at its restarts") {
    // Until then the old one is left to serve, however many turns pass.
    rig.turn();
    rig.after(10s);
    CHECK(rig.launcher.child(old).signals.empty());
    rig.launcher.connect(fresh);
    rig.turn();
    CHECK(rig.launcher.child(old).signals == std::vector<int>{SIGTERM});
    rig.launcher.exit_with(old, 0);
    rig.launcher.kill_with(fresh, SIGKILL);
    rig.turn();
    rig.after(1s);
    CHECK(rig.launcher.last().pid != fresh);
    CHECK_FALSE(rig.launcher.last().replacing);
  }
}
