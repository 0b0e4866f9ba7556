// plan_reload() alone: what a SIGHUP does to the running workers, from
// made-up worker records and configs, with no process and no file.
#include "supervisor/reload_plan.hpp"

#include <catch2/catch.hpp>

#include <deque>
#include <string>
#include <vector>

using sbus::ReloadPlan;
using sbus::WorkerRecord;
using sbus::WorkerState;
using Step = ReloadPlan::Step;

namespace {

const std::string kA = "amqp://guest:guest@10.0.0.1:5672/%2f";
const std::string kB = "amqp://guest:guest@10.0.0.2:5672/%2f";
const std::string kC = "amqp://guest:guest@10.0.0.3:5672/%2f";

sbus::Config config_of(std::vector<std::string> brokers, std::vector<std::string> services = {"math.add"}) {
  sbus::Config config;
  config.node = "plan-test";
  config.brokers = std::move(brokers);
  for (const std::string& name : services) {
    sbus::ServiceConfig service;
    service.name = name;
    service.plugin_path = "/plugins/" + name.substr(0, name.find('.')) + ".so";
    config.services.push_back(service);
  }
  return config;
}

struct Workers {
  std::deque<WorkerRecord> records;

  // A record as the supervisor keeps it: pid > 0 when it has a process.
  Workers& add(std::uint64_t id, const std::string& broker, WorkerState state, pid_t pid) {
    WorkerRecord& record = records.emplace_back();
    record.id = id;
    record.broker = broker;
    record.state = state;
    record.pid = pid;
    return *this;
  }
  Workers& running(std::uint64_t id, const std::string& broker) {
    return add(id, broker, WorkerState::kRunning, static_cast<pid_t>(100 + id));
  }
};

const sbus::PluginStamps kStamps = {{"/plugins/math.so", {1000, 42}}};

ReloadPlan plan(const Workers& workers, const sbus::Config& running, const sbus::Config& loaded,
                const sbus::PluginStamps& loaded_stamps = kStamps, const std::vector<std::string>& problems = {}) {
  return sbus::plan_reload({workers.records, running, kStamps, loaded, loaded_stamps, problems});
}

ReloadPlan::Broker step(Step what, std::size_t index, std::uint64_t worker = 0, bool restart = false) {
  return {what, index, worker, restart};
}

}  // namespace

namespace Catch {
template <>
struct StringMaker<ReloadPlan::Broker> {
  static std::string convert(const ReloadPlan::Broker& b) {
    const char* what = b.step == Step::kStart ? "start" : b.step == Step::kAdopt ? "adopt" : "replace";
    return std::string("{") + what + " broker " + std::to_string(b.index) + " worker " + std::to_string(b.worker) +
           (b.restart ? " restart}" : "}");
  }
};
}  // namespace Catch

TEST_CASE("a reload that changes nothing keeps every worker, and starts again one that had given up", "[reload_plan]") {
  Workers workers;
  workers.running(1, kA).add(2, kB, WorkerState::kFailed, -1);
  const sbus::Config config = config_of({kA, kB});
  const ReloadPlan p = plan(workers, config, config);
  CHECK_FALSE(p.refused());
  CHECK_FALSE(p.settings_changed);
  CHECK(p.drain.empty());
  CHECK(p.drop.empty());
  CHECK(p.brokers == std::vector<ReloadPlan::Broker>{step(Step::kAdopt, 0, 1), step(Step::kAdopt, 1, 2, true)});
  CHECK(p.count(Step::kReplace) == 0);
}

TEST_CASE("a broker added gets a worker of its own and the others are kept", "[reload_plan]") {
  Workers workers;
  workers.running(1, kA);
  const ReloadPlan p = plan(workers, config_of({kA}), config_of({kA, kB}));
  CHECK(p.brokers == std::vector<ReloadPlan::Broker>{step(Step::kAdopt, 0, 1), step(Step::kStart, 1)});
  CHECK(p.count(Step::kStart) == 1);
  CHECK(p.removed() == 0);

  SECTION("also when it comes first: each worker follows its broker to its new place") {
    const ReloadPlan first = plan(workers, config_of({kA}), config_of({kB, kA}));
    CHECK(first.brokers == std::vector<ReloadPlan::Broker>{step(Step::kStart, 0), step(Step::kAdopt, 1, 1)});
  }
}

TEST_CASE("a broker removed drains its worker, or drops its record when it has no process", "[reload_plan]") {
  Workers workers;
  workers.running(1, kA).running(2, kB).add(3, kC, WorkerState::kWaitingRestart, -1);
  const ReloadPlan p = plan(workers, config_of({kA, kB, kC}), config_of({kA}));
  CHECK(p.drain == std::vector<std::uint64_t>{2});
  CHECK(p.drop == std::vector<std::uint64_t>{3});
  CHECK(p.removed() == 2);
  CHECK(p.brokers == std::vector<ReloadPlan::Broker>{step(Step::kAdopt, 0, 1)});

  SECTION("a worker already draining is left to finish, not drained twice") {
    Workers draining;
    draining.running(1, kA).add(2, kB, WorkerState::kDraining, 102);
    const ReloadPlan again = plan(draining, config_of({kA}), config_of({kA}));
    CHECK(again.drain.empty());
    CHECK(again.removed() == 0);
  }
}

TEST_CASE("changed worker settings replace every running worker, one broker at a time", "[reload_plan]") {
  Workers workers;
  workers.running(1, kA).running(2, kB);
  const ReloadPlan p = plan(workers, config_of({kA, kB}), config_of({kA, kB}, {"math.add", "test.echo"}));
  CHECK(p.settings_changed);
  CHECK(p.brokers == std::vector<ReloadPlan::Broker>{step(Step::kReplace, 0, 1), step(Step::kReplace, 1, 2)});
  CHECK(p.drain.empty());

  SECTION("a worker without a process takes the new config at its next start instead") {
    Workers idle;
    idle.add(1, kA, WorkerState::kWaitingRestart, -1).add(2, kB, WorkerState::kFailed, -1);
    const ReloadPlan q = plan(idle, config_of({kA, kB}), config_of({kA, kB}, {"math.add", "test.echo"}));
    CHECK(q.brokers == std::vector<ReloadPlan::Broker>{step(Step::kAdopt, 0, 1), step(Step::kAdopt, 1, 2, true)});
  }
  SECTION("any worker setting counts, not only the service list") {
    sbus::Config slower = config_of({kA, kB});
    slower.drain_timeout_seconds = 5;
    CHECK(plan(workers, config_of({kA, kB}), slower).count(Step::kReplace) == 2);
  }
  SECTION("the broker list alone is not a worker setting") {
    CHECK_FALSE(plan(workers, config_of({kA, kB}), config_of({kA, kB, kC})).settings_changed);
  }
  SECTION("during a replacement, the old worker is the one planned for, not its successor") {
    Workers replacing;
    replacing.running(1, kA).running(3, kA).add(2, kB, WorkerState::kDraining, 102);
    const ReloadPlan r = plan(replacing, config_of({kA}), config_of({kA}, {"math.add", "test.echo"}));
    CHECK(r.brokers == std::vector<ReloadPlan::Broker>{step(Step::kReplace, 0, 1)});
  }
}

TEST_CASE("a plugin file replaced on disk replaces the workers as a changed setting does", "[reload_plan]") {
  Workers workers;
  workers.running(1, kA);
  const sbus::Config config = config_of({kA});
  SECTION("a new modification time") {
    const ReloadPlan p = plan(workers, config, config, {{"/plugins/math.so", {1000, 43}}});
    CHECK(p.settings_changed);
    CHECK(p.brokers == std::vector<ReloadPlan::Broker>{step(Step::kReplace, 0, 1)});
  }
  SECTION("a new size") {
    CHECK(plan(workers, config, config, {{"/plugins/math.so", {2000, 42}}}).count(Step::kReplace) == 1);
  }
  SECTION("a file that is gone") {
    CHECK(plan(workers, config, config, {}).count(Step::kReplace) == 1);
  }
  SECTION("the same stamps change nothing") {
    CHECK(plan(workers, config, config, kStamps).count(Step::kAdopt) == 1);
  }
}

TEST_CASE("a new config that did not load is refused whole and the old one keeps running", "[reload_plan]") {
  Workers workers;
  workers.running(1, kA).add(2, kB, WorkerState::kFailed, -1);
  const std::vector<std::string> problems = {"sbusd.yaml:3: brokers[0]: malformed AMQP URI", "state_dir: denied"};
  // What a failed load leaves: a partial config, here one that drops a broker and changes services.
  const ReloadPlan p = plan(workers, config_of({kA, kB}), config_of({kC}, {"test.echo"}), {}, problems);
  CHECK(p.refused());
  CHECK(p.problems == problems);
  CHECK(p.drain.empty());
  CHECK(p.drop.empty());
  CHECK(p.brokers.empty());
  CHECK_FALSE(p.settings_changed);
}

namespace {

sbus::ServiceConfig event_service(const std::string& name, std::vector<std::string> topics,
                                  const std::string& group = {}) {
  sbus::ServiceConfig service;
  service.name = name;
  service.kind = sbus::ServiceKind::kEvent;
  service.topics = std::move(topics);
  service.group = group;
  return service;
}

}  // namespace

TEST_CASE("A reload retires the event bindings the new config drops, and only those", "[reload][events]") {
  sbus::Config running = config_of({kA});
  running.services.push_back(event_service("audit.record", {"orders.*", "audit.#"}));
  running.services.push_back(event_service("bill.take", {"orders.paid"}, "billing"));
  sbus::Config loaded = config_of({kA});
  loaded.services.push_back(event_service("audit.record", {"orders.*", "users.created"}));
  Workers workers;
  workers.add(1, kA, WorkerState::kRunning, 100);
  const ReloadPlan plan = sbus::plan_reload({workers.records, running, {}, loaded, {}, {}});

  REQUIRE_FALSE(plan.refused());
  CHECK(plan.settings_changed);
  CHECK(plan.count(Step::kReplace) == 1);
  const std::vector<sbus::EventBinding> expected = {{"plan-test.event.audit.record", "audit.#"},
                                                    {"sbus.events.group.billing", "orders.paid"}};
  CHECK(plan.retired_bindings == expected);

  SECTION("what an earlier reload retired stays retired until bound again") {
    loaded.retired_bindings = plan.retired_bindings;
    sbus::Config again = loaded;
    again.retired_bindings.clear();
    again.services[1].topics.push_back("audit.#");
    const ReloadPlan next = sbus::plan_reload({workers.records, loaded, {}, again, {}, {}});
    const std::vector<sbus::EventBinding> still = {{"sbus.events.group.billing", "orders.paid"}};
    CHECK(next.retired_bindings == still);
  }
}
