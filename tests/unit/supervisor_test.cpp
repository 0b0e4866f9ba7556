// The Supervisor on fakes (supervisor_fakes.hpp): made-up worker processes
// and a clock that moves only when told, so that restarts, replacements,
// reload refusals and the KILL escalation are checked turn by turn, in
// milliseconds. tests/integration/supervisor_test.cpp runs the same
// behaviours with real processes and a real broker.
#include "supervisor/supervisor.hpp"

#include <signal.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "base/crash_journal.hpp"
#include "supervisor_fakes.hpp"

using namespace std::chrono_literals;
using sbus::WorkerState;
using sbus_test::FakeLauncher;
using sbus_test::RigConfig;
using sbus_test::SupervisorRig;

namespace {

const std::string kA = "amqp://guest:guest@10.0.0.1:5672/%2f";
const std::string kB = "amqp://guest:guest@10.0.0.2:5672/%2f";
const std::string kRedactedA = "amqp://guest@10.0.0.1:5672/%2f";
const std::string kRedactedB = "amqp://guest@10.0.0.2:5672/%2f";

const sbus::WorkerRecord& record_of(SupervisorRig& rig, pid_t pid) {
  for (const sbus::WorkerRecord& worker : rig.supervisor().workers()) {
    if (worker.pid == pid) return worker;
  }
  FAIL("no worker record with pid " << pid);
  throw;
}

}  // namespace

TEST_CASE("the supervisor starts a worker per broker and says READY once every one has connected",
          "[supervisor][start]") {
  SupervisorRig rig({.brokers = {kA, kB}});
  REQUIRE(rig.launcher.workers_started() == 2);
  const pid_t a = rig.launcher.worker_of(kA).pid;
  const pid_t b = rig.launcher.worker_of(kB).pid;
  rig.launcher.connect(a);
  rig.turn();
  CHECK(rig.count("READY=1") == 0);
  CHECK(rig.status() == "1/2 brokers connected, 1 services");

  SECTION("READY when the last one connects") {
    rig.launcher.connect(b);
    rig.turn();
    CHECK(rig.count("READY=1") == 1);
    CHECK(rig.status() == "2/2 brokers connected, 1 services");
    CHECK(rig.log.count("ready: 2/2 brokers connected") == 1);
  }
  SECTION("or 10 s after the start with a broker down") {
    rig.after(9999ms);
    CHECK(rig.count("READY=1") == 0);
    rig.after(1ms);
    CHECK(rig.count("READY=1") == 1);
    CHECK(rig.log.count("ready: 1/2 brokers connected") == 1);
  }
  SECTION("a service its worker could not start is named in STATUS, and READY still comes") {
    rig.launcher.write(b, std::string(1, sbus::kStatusUnavailable) + "test.record: start failed: no file\n");
    rig.launcher.connect(b);
    rig.turn();
    CHECK(rig.count("READY=1") == 1);
    CHECK(rig.status() == "2/2 brokers connected, 1 services; unavailable: test.record: start failed: no file");
    CHECK(rig.log.count("ready: 2/2 brokers connected, 1 service(s) unavailable") == 1);
  }
  CHECK(rig.launcher.signals_sent() == 0);
}

TEST_CASE(
    "a worker that keeps failing is restarted after 100 ms doubled per rapid failure, and a healthy run "
    "resets the delay",
    "[supervisor][restart]") {
  SupervisorRig rig;
  // Each failure 50 ms after its start: rapid.
  const std::vector<std::chrono::milliseconds> expected = {100ms, 200ms, 400ms, 800ms, 1600ms};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const pid_t pid = rig.launcher.worker_of(kA).pid;
    rig.clock.advance(50ms);
    rig.launcher.exit_with(pid, 1);
    rig.turn();
    INFO("failure " << i + 1);
    CHECK(rig.log.count("(pid " + std::to_string(pid) + ") exited with code 1 after 50 ms; restarting in " +
                        std::to_string(expected[i].count()) + " ms") == 1);
    // The loop sleeps until the restart is due, a second at most.
    CHECK(rig.supervisor().wait_timeout() == std::min(expected[i], std::chrono::milliseconds(1000)));
    rig.after(expected[i] - 1ms);
    CHECK(rig.launcher.workers_started() == i + 1);
    rig.after(1ms);
    REQUIRE(rig.launcher.workers_started() == i + 2);
    CHECK(rig.launcher.last().restarts == i + 1);
  }
  // A run of 10 s counts as healthy: the next failure waits 100 ms again.
  const pid_t healthy = rig.launcher.worker_of(kA).pid;
  rig.launcher.connect(healthy);
  rig.after(10s);
  rig.launcher.kill_with(healthy, SIGSEGV);
  rig.turn();
  CHECK(rig.log.count("(pid " + std::to_string(healthy) +
                      ") killed by signal 11 (Segmentation fault) after 10000 ms; restarting in 100 ms") == 1);
  CHECK(record_of(rig, -1).history.last_exit == std::string("killed by signal 11 (Segmentation fault)"));
  CHECK(record_of(rig, -1).policy.rapid_failures() == 0);
  CHECK(rig.launcher.signals_sent() == 0);
}

TEST_CASE("a worker killed while running calls restarts at once and the back-off does not grow",
          "[supervisor][restart][crash]") {
  SupervisorRig rig;
  sbus::CrashJournal* journal = rig.supervisor().journal();
  REQUIRE(journal != nullptr);
  for (int i = 0; i < 3; ++i) {
    const pid_t pid = rig.launcher.worker_of(kA).pid;
    // What a service thread of that worker notes before it runs a call.
    const int slot = journal->claim_slot(pid, sbus::CrashJournal::service_key("test.crash"));
    REQUIRE(slot >= 0);
    journal->begin(slot, sbus::CrashJournal::key("reply-" + std::to_string(i), "corr", "event"));
    rig.clock.advance(50ms);
    rig.launcher.kill_with(pid, SIGSEGV);
    rig.turn();
    INFO("crash " << i + 1);
    CHECK(rig.log.count("worker pid " + std::to_string(pid) + " died during 1 call(s)") == 1);
    CHECK(rig.log.count("(pid " + std::to_string(pid) +
                        ") killed by signal 11 (Segmentation fault) after 50 ms; "
                        "restarting in 0 ms (the crash is pinned on the calls it was running)") == 1);
    CHECK(rig.launcher.workers_started() == static_cast<std::size_t>(i) + 2);  // the same turn
  }
  // An unexplained failure afterwards still starts its doubling at 100 ms.
  const pid_t pid = rig.launcher.worker_of(kA).pid;
  rig.launcher.kill_with(pid, SIGSEGV);
  rig.turn();
  CHECK(rig.log.count("(pid " + std::to_string(pid) +
                      ") killed by signal 11 (Segmentation fault) after 0 ms; "
                      "restarting in 100 ms") == 1);
}

TEST_CASE("a worker that cannot be forked is tried again every second", "[supervisor][restart]") {
  SupervisorRig rig;
  const pid_t pid = rig.launcher.worker_of(kA).pid;
  rig.launcher.refuse_starts = 2;
  rig.launcher.exit_with(pid, 1);
  rig.turn();
  rig.after(100ms);  // the restart is due, the fork fails
  CHECK(rig.log.count("cannot start a worker for " + kRedactedA +
                      ": fork failed: Resource temporarily unavailable; "
                      "retrying in 1 s") == 1);
  rig.after(999ms);
  CHECK(rig.log.count("retrying in 1 s") == 1);
  rig.after(1ms);
  CHECK(rig.log.count("retrying in 1 s") == 2);
  rig.after(1s);
  CHECK(rig.launcher.workers_started() == 2);
}

TEST_CASE("a worker that exits with the fatal code is not restarted until the next reload",
          "[supervisor][restart][reload]") {
  SupervisorRig rig;
  const pid_t pid = rig.launcher.worker_of(kA).pid;
  rig.launcher.exit_with(pid, sbus::kWorkerExitFatal);
  rig.turn();
  CHECK(rig.log.count("(pid " + std::to_string(pid) +
                      ") exited with code 2: fatal, not restarting until the next "
                      "reload") == 1);
  REQUIRE(rig.supervisor().workers().front().state == WorkerState::kFailed);
  // Given up: it counts as settled for READY.
  CHECK(rig.count("READY=1") == 1);
  for (int i = 0; i < 60; ++i) rig.after(1s);
  CHECK(rig.launcher.workers_started() == 1);

  rig.reload_passing();
  CHECK(rig.launcher.workers_started() == 2);
  CHECK(rig.launcher.last().broker == kA);
  CHECK(rig.supervisor().workers().front().state == WorkerState::kRunning);
  CHECK(rig.log.count("reload: 0 broker(s) added, 0 removed, 0 worker(s) to replace one at a time") == 1);
}

TEST_CASE("SIGTERM drains every worker, and one still alive at drain_timeout plus 5 s is killed",
          "[supervisor][stop]") {
  SupervisorRig rig({.brokers = {kA, kB}, .drain_timeout_seconds = 3});
  FakeLauncher::Child& a = rig.launcher.worker_of(kA);
  FakeLauncher::Child& b = rig.launcher.worker_of(kB);
  rig.launcher.connect(a.pid);
  rig.launcher.connect(b.pid);
  rig.turn();

  REQUIRE(rig.stop());
  CHECK(a.signals == std::vector<int>{SIGTERM});
  CHECK(b.signals == std::vector<int>{SIGTERM});
  CHECK(rig.count("STOPPING=1") == 1);
  CHECK(rig.status() == "2/2 brokers connected, 1 services, stopping");
  CHECK(rig.log.count("stopping: draining workers") == 1);

  SECTION("workers that stop in time are not killed, and the loop ends once all are gone") {
    rig.clock.advance(2s);
    rig.launcher.exit_with(a.pid, 0);
    CHECK(rig.turn());
    rig.launcher.exit_with(b.pid, 0);
    CHECK_FALSE(rig.turn());
    CHECK(rig.supervisor().workers().empty());
    CHECK(rig.log.count("did not stop in time") == 0);
    CHECK(rig.log.count("(pid " + std::to_string(a.pid) + ") exited with code 0") == 1);
  }
  SECTION("one that does not stop gets SIGKILL at the deadline, and again every 5 s") {
    rig.launcher.exit_with(a.pid, 0);
    CHECK(rig.after(7999ms));
    CHECK(b.signals == std::vector<int>{SIGTERM});
    CHECK(rig.after(1ms));
    CHECK(b.signals == std::vector<int>{SIGTERM, SIGKILL});
    CHECK(rig.log.count("worker pid " + std::to_string(b.pid) + " did not stop in time: SIGKILL") == 1);
    CHECK(rig.after(4999ms));
    CHECK(b.signals.size() == 2);
    CHECK(rig.after(1ms));
    CHECK(b.signals == std::vector<int>{SIGTERM, SIGKILL, SIGKILL});
    rig.launcher.kill_with(b.pid, SIGKILL);
    CHECK_FALSE(rig.turn());
    // A signal is a crash even while stopping: logged at error.
    const std::string line = rig.log.line_of("(pid " + std::to_string(b.pid) + ") killed by signal 9 (Killed)");
    CHECK(line.find(" error [supervisor pid=") != std::string::npos);
    CHECK(rig.log.line_of("(pid " + std::to_string(a.pid) + ") exited with code 0").find(" info [supervisor pid=") !=
          std::string::npos);
  }
  SECTION("a second SIGTERM changes no deadline") {
    rig.clock.advance(7s);
    CHECK(rig.stop());
    CHECK(b.signals == std::vector<int>{SIGTERM});
    CHECK(rig.after(1s));
    CHECK(b.signals == std::vector<int>{SIGTERM, SIGKILL});
  }
  SECTION("a SIGHUP while stopping is ignored") {
    CHECK(rig.hup());
    CHECK(rig.launcher.checks_started() == 0);
  }
}

TEST_CASE("SIGTERM drops a worker waiting for its restart at once", "[supervisor][stop]") {
  SupervisorRig rig({.brokers = {kA, kB}});
  rig.launcher.exit_with(rig.launcher.worker_of(kA).pid, 1);
  rig.turn();
  REQUIRE(rig.stop());
  REQUIRE(rig.supervisor().workers().size() == 1);
  CHECK(rig.supervisor().workers().front().broker == kB);
  rig.after(1s);  // its restart would have been due
  CHECK(rig.launcher.workers_started() == 2);
  rig.launcher.exit_with(rig.launcher.worker_of(kB).pid, 0);
  CHECK_FALSE(rig.turn());
}

TEST_CASE("a reload whose check finds problems changes nothing and says READY again", "[supervisor][reload]") {
  SupervisorRig rig;
  const pid_t worker = rig.launcher.worker_of(kA).pid;
  rig.launcher.connect(worker);
  rig.turn();
  REQUIRE(rig.count("READY=1") == 1);
  rig.write_config({.brokers = {kA, kB}, .services = {"math.add", "nosuchplugin.add"}});

  rig.hup();
  REQUIRE(rig.supervisor().reload_running());
  CHECK(rig.states.back() != "READY=1");
  CHECK(rig.count("RELOADING=1") == 1);
  CHECK(rig.log.count("reloading " + rig.path()) == 1);
  const pid_t check = rig.launcher.last().pid;
  rig.launcher.write(check, "sbusd.yaml:9: services[1]: nosuchplugin: no such plugin\n");
  rig.launcher.exit_with(check, 1);
  rig.turn();

  CHECK_FALSE(rig.supervisor().reload_running());
  CHECK(rig.log.count("reload: sbusd.yaml:9: services[1]: nosuchplugin: no such plugin") == 1);
  CHECK(rig.log.count("reload failed: 1 problem(s); still running the previous config") == 1);
  CHECK(rig.count("READY=1") == 2);
  CHECK(rig.launcher.workers_started() == 1);
  CHECK(rig.launcher.signals_sent() == 0);
  CHECK(rig.supervisor().config().brokers == std::vector<std::string>{kA});
  CHECK(rig.supervisor().config().services.size() == 1);

  SECTION("a check that dies without a word is a problem too") {
    rig.hup();
    rig.launcher.kill_with(rig.launcher.last().pid, SIGSEGV);
    rig.turn();
    CHECK(rig.log.count("reload: config check killed by signal 11") == 1);
    CHECK(rig.count("READY=1") == 3);
  }
}

TEST_CASE("a reload whose check hangs is abandoned at the check timeout while workers are still restarted",
          "[supervisor][reload]") {
  SupervisorRig rig({}, {}, 8s);
  rig.hup();
  const pid_t check = rig.launcher.last().pid;
  // The loop wakes for the check's deadline at the latest.
  CHECK(rig.supervisor().wait_timeout() <= 1000ms);
  const pid_t worker = rig.launcher.worker_of(kA).pid;
  rig.launcher.kill_with(worker, SIGKILL);
  rig.turn();
  rig.after(100ms);
  CHECK(rig.launcher.workers_started() == 2);

  SECTION("a SIGHUP meanwhile runs one more reload after it") {
    rig.hup();
    CHECK(rig.launcher.checks_started() == 1);
    rig.after(7899ms);
    CHECK(rig.launcher.child(check).signals.empty());
    rig.after(1ms);
    CHECK(rig.launcher.child(check).signals == std::vector<int>{SIGKILL});
    CHECK(rig.log.count("reload: the config check (pid " + std::to_string(check) +
                        ") did not finish within 8000 ms: abandoned; still running the previous config") == 1);
    CHECK(rig.launcher.checks_started() == 2);
    CHECK(rig.count("RELOADING=1") == 2);
  }
  SECTION("SIGTERM abandons it at once") {
    rig.stop();
    CHECK(rig.launcher.child(check).signals == std::vector<int>{SIGKILL});
    CHECK(rig.log.count("stopping: the reload under way is abandoned") == 1);
    rig.launcher.kill_with(check, SIGKILL);
    rig.launcher.exit_with(rig.launcher.worker_of(kA).pid, 0);
    CHECK_FALSE(rig.turn());
  }
}

TEST_CASE("a reload that adds and removes brokers starts and drains only their workers", "[supervisor][reload]") {
  SupervisorRig rig({.brokers = {kA}});
  const pid_t a = rig.launcher.worker_of(kA).pid;
  rig.write_config({.brokers = {kA, kB}});
  rig.reload_passing();
  CHECK(rig.log.count("reload: 1 broker(s) added, 0 removed, 0 worker(s) to replace one at a time") == 1);
  REQUIRE(rig.launcher.workers_started() == 2);
  const pid_t b = rig.launcher.worker_of(kB).pid;
  CHECK(rig.count("READY=1") == 1);  // after the reload, not at start: nothing had connected

  rig.write_config({.brokers = {kA}});
  rig.reload_passing();
  CHECK(rig.log.count("reload: 0 broker(s) added, 1 removed, 0 worker(s) to replace one at a time") == 1);
  CHECK(rig.log.count("broker " + kRedactedB + " removed: draining its worker pid " + std::to_string(b)) == 1);
  CHECK(rig.launcher.child(b).signals == std::vector<int>{SIGTERM});
  CHECK(rig.launcher.child(a).signals.empty());
  CHECK(record_of(rig, b).state == WorkerState::kDraining);
  // Not restarted when it exits: its record goes.
  rig.launcher.exit_with(b, 0);
  rig.turn();
  rig.after(1s);
  CHECK(rig.supervisor().workers().size() == 1);
  CHECK(rig.launcher.workers_started() == 2);
}

TEST_CASE(
    "a reload that changes worker settings replaces the workers one at a time, each old one stopped only "
    "once its successor consumes",
    "[supervisor][reload]") {
  SupervisorRig rig({.brokers = {kA, kB}});
  const pid_t old_a = rig.launcher.worker_of(kA).pid;
  const pid_t old_b = rig.launcher.worker_of(kB).pid;
  rig.launcher.connect(old_a);
  rig.launcher.connect(old_b);
  rig.turn();
  rig.write_config({.brokers = {kA, kB}, .services = {"math.add", "test.echo"}});
  rig.reload_passing();
  CHECK(rig.log.count("reload: 0 broker(s) added, 0 removed, 2 worker(s) to replace one at a time") == 1);
  REQUIRE(rig.launcher.workers_started() == 3);
  const pid_t new_a = rig.launcher.last().pid;
  CHECK(rig.launcher.last().broker == kA);
  CHECK(rig.launcher.last().services == 2);
  CHECK(rig.log.count("replacing worker pid " + std::to_string(old_a) + " for " + kRedactedA + " with pid " +
                      std::to_string(new_a)) == 1);
  rig.after(10s);
  CHECK(rig.launcher.signals_sent() == 0);
  CHECK(rig.launcher.workers_started() == 3);  // one at a time
  CHECK(rig.status() == "2/2 brokers connected, 2 services");

  SECTION("the old worker drains once the new one has connected, then the next broker's turn comes") {
    rig.launcher.connect(new_a);
    rig.turn();
    CHECK(rig.launcher.child(old_a).signals == std::vector<int>{SIGTERM});
    REQUIRE(rig.launcher.workers_started() == 4);
    const pid_t new_b = rig.launcher.last().pid;
    CHECK(rig.launcher.last().broker == kB);
    CHECK(rig.launcher.child(old_b).signals.empty());
    rig.launcher.connect(new_b);
    rig.turn();
    CHECK(rig.launcher.child(old_b).signals == std::vector<int>{SIGTERM});
    rig.launcher.exit_with(old_a, 0);
    rig.launcher.exit_with(old_b, 0);
    rig.after(1s);
    CHECK(rig.supervisor().workers().size() == 2);
    CHECK(rig.launcher.workers_started() == 4);
    CHECK(rig.log.count("not connected in time") == 0);
  }
  SECTION("a new worker that has not connected within 30 s replaces the old one anyway") {
    rig.after(19999ms);
    CHECK(rig.launcher.child(old_a).signals.empty());
    rig.after(1ms);
    CHECK(rig.launcher.child(old_a).signals == std::vector<int>{SIGTERM});
    CHECK(rig.log.count("replacement for " + kRedactedA + " not connected in time; replacing anyway") == 1);
  }
}

TEST_CASE("a replacement worker that dies at start leaves the old worker serving with the old config",
          "[supervisor][reload]") {
  SupervisorRig rig;
  const pid_t old = rig.launcher.worker_of(kA).pid;
  rig.launcher.connect(old);
  rig.turn();
  rig.write_config({.services = {"math.add", "test.record"}});
  rig.reload_passing();
  const pid_t fresh = rig.launcher.last().pid;
  REQUIRE(fresh != old);
  REQUIRE(rig.launcher.last().services == 2);

  SECTION("with the fatal code: given up at once") {
    rig.launcher.exit_with(fresh, sbus::kWorkerExitFatal);
    rig.turn();
    CHECK(rig.log.count("(pid " + std::to_string(fresh) + ") exited with code 2: fatal, not restarting") == 1);
    CHECK(rig.log.count("replacement worker for " + kRedactedA +
                        " failed to start; the previous worker keeps serving") == 1);
    CHECK(rig.log.count("guest:guest") == 0);  // no password in the log
    CHECK(rig.launcher.child(old).signals.empty());
    REQUIRE(rig.supervisor().workers().size() == 1);
    const sbus::WorkerRecord& kept = rig.supervisor().workers().front();
    CHECK(kept.pid == old);
    CHECK(kept.config->services.size() == 1);
    // The supervisor's own config is the new one; the kept worker's is not,
    // also across its restarts.
    CHECK(rig.supervisor().config().services.size() == 2);
    rig.launcher.kill_with(old, SIGKILL);
    rig.turn();
    rig.after(100ms);
    CHECK(rig.launcher.last().services == 1);
    CHECK(rig.launcher.last().broker == kA);
  }
  SECTION("with a crash: restarted with back-off until the replacement deadline, then the old one drains anyway") {
    rig.launcher.exit_with(fresh, 1);
    rig.turn();
    CHECK(rig.launcher.child(old).signals.empty());
    rig.after(100ms);
    CHECK(rig.launcher.workers_started() == 3);
    rig.after(30s);
    CHECK(rig.launcher.child(old).signals == std::vector<int>{SIGTERM});
    CHECK(rig.log.count("not connected in time; replacing anyway") == 1);
  }
}

TEST_CASE("the watchdog is sent every half WATCHDOG_USEC while the loop turns, not while it stops",
          "[supervisor][systemd]") {
  SupervisorRig rig({}, 500ms);
  rig.turn();
  CHECK(rig.count("WATCHDOG=1") == 1);
  CHECK(rig.supervisor().wait_timeout() == 500ms);
  rig.after(499ms);
  CHECK(rig.count("WATCHDOG=1") == 1);
  rig.after(1ms);
  CHECK(rig.count("WATCHDOG=1") == 2);
  rig.stop();
  rig.after(1s);
  CHECK(rig.count("WATCHDOG=1") == 2);
}
