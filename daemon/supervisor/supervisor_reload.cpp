// The Supervisor's reload: SIGHUP starts a config check in a child
// (config_check.hpp) while the loop goes on; once it passed, the file is
// loaded, plan_reload() decides (reload_plan.hpp), and apply() carries the
// plan out; replacements then go one broker at a time (step_replacement()).
#include <signal.h>

#include <algorithm>
#include <utility>

#include "base/broker_uri.hpp"
#include "base/log.hpp"
#include "supervisor/rolling_replace.hpp"
#include "supervisor/supervisor.hpp"

namespace sbus {

namespace {

// A broker as the config lists it, without its password.
std::string redacted(const std::string& broker) {
  BrokerUri uri;
  std::string error;
  return parse_broker_uri(broker, &uri, &error) ? uri.redacted() : "(a broker)";
}

}  // namespace

void Supervisor::start_reload() {
  if (reload_check_) {
    reload_again_ = true;
    return;
  }
  notifier_.reloading();
  SBUS_LOG(kInfo) << "reloading " << settings_.path;
  std::string error;
  // start() too: a service that cannot start is refused before any worker
  // is replaced (a worker would serve on without it).
  const LaunchedChild child =
      launcher_.start_check(settings_.path, settings_.overrides, settings_.check_timeout, true, &error);
  if (child.pid < 0) {
    SBUS_LOG(kError) << "reload failed: cannot check the config: " << error << "; still running the previous config";
    notifier_.ready();
    return;
  }
  reload_check_ = std::make_unique<ConfigCheck>(child, settings_.check_timeout, clock_.now());
}

// Each turn while a reload's check runs: past its deadline, abandon it;
// once it is done, apply the new config or log why not.
void Supervisor::step_reload() {
  if (!reload_check_) return;
  reload_check_->read();
  if (!reload_check_->done()) {
    if (reload_check_->overdue(clock_.now())) {
      // Reaped by a later turn; the next turns read nothing more of it.
      reload_check_->kill(launcher_);
      SBUS_LOG(kError) << "reload: the config check (pid " << reload_check_->pid() << ") did not finish within "
                       << settings_.check_timeout.count() << " ms: abandoned; still running the previous config";
      reload_check_.reset();
      notifier_.ready();
      if (std::exchange(reload_again_, false) && !stopping_) start_reload();
    }
    return;
  }
  std::vector<std::string> problems = reload_check_->problems();
  reload_check_.reset();
  if (stopping_) return;
  if (problems.empty()) {
    reload();
  } else {
    refuse_reload(problems);
  }
  if (std::exchange(reload_again_, false) && !stopping_) start_reload();
}

void Supervisor::refuse_reload(const std::vector<std::string>& problems) {
  for (const std::string& problem : problems) SBUS_LOG(kError) << "reload: " << problem;
  SBUS_LOG(kError) << "reload failed: " << problems.size() << " problem(s); still running the previous config";
  notifier_.ready();
}

// Applies the config that a check has just passed: loads it (the check
// passed, so it reads at once unless replaced since, which the load reports
// like any problem), plans, and carries the plan out.
void Supervisor::reload() {
  Config loaded;
  std::vector<std::string> problems;
  load_config(settings_.path, settings_.overrides, &loaded, &problems);
  if (std::string error; problems.empty() && !open_replay(loaded, &error)) problems.push_back("state_dir: " + error);
  const PluginStamps stamps = problems.empty() ? stamp_plugins(loaded) : PluginStamps{};
  const ReloadPlan plan = plan_reload({workers_, *config_, stamps_, loaded, stamps, problems});
  if (plan.refused()) {
    refuse_reload(plan.problems);
    return;
  }
  loaded.retired_bindings = plan.retired_bindings;
  apply(plan, std::make_shared<const Config>(std::move(loaded)), stamps);
}

void Supervisor::apply(const ReloadPlan& plan, std::shared_ptr<const Config> config, PluginStamps stamps) {
  log_init("supervisor", config->log_level);
  set_log_output(*config);
  for (const std::uint64_t id : plan.drain) {
    WorkerRecord& worker = *find_id(id);
    SBUS_LOG(kInfo) << "broker " << worker.name() << " removed: draining its worker pid " << worker.pid;
    worker.state = WorkerState::kDraining;
    launcher_.signal(worker.pid, SIGTERM);
  }
  for (const std::uint64_t id : plan.drop) {
    WorkerRecord& worker = *find_id(id);
    close_status(worker);
    erase(worker);
  }
  // The audit trail of who may call what: each change, before any worker
  // runs under it.
  for (const std::string& line : access_changes(*config_, *config)) SBUS_LOG(kWarn) << line;
  to_replace_.clear();
  for (const ReloadPlan::Broker& step : plan.brokers) {
    const std::string& broker = config->brokers[step.index];
    if (step.step == ReloadPlan::Step::kStart) {
      WorkerRecord& worker = add_worker(broker, step.index);
      worker.config = config;
      spawn(worker);
    } else if (step.step == ReloadPlan::Step::kAdopt) {
      WorkerRecord& worker = *find_id(step.worker);
      worker.config = config;
      worker.broker_index = step.index;
      if (step.restart) spawn(worker);
    } else {
      to_replace_.push_back(broker);
    }
  }
  for (const std::string& path : changed_plugins(stamps_, stamps))
    SBUS_LOG(kInfo) << "reload: plugin " << path << " changed";
  isolated_.reload(config, stamps_, stamps);
  config_ = std::move(config);
  stamps_ = std::move(stamps);
  SBUS_LOG(kInfo) << "reload: " << plan.count(ReloadPlan::Step::kStart) << " broker(s) added, " << plan.removed()
                  << " removed, " << to_replace_.size() << " worker(s) to replace one at a time";
  notifier_.ready();
}

// Replaces the workers in to_replace_ one at a time: start the new one,
// wait until it consumes with every service, then drain the old one
// (rolling_replace.hpp).
void Supervisor::step_replacement() {
  if (replacing_) {
    WorkerRecord* fresh = find_id(replacing_->new_id);
    WorkerRecord* old = find(replacing_->old_pid);
    const ReplaceStep step = next_replace_step(fresh, clock_.now() >= replacing_->deadline);
    if (step == ReplaceStep::kWait) return;
    if (step == ReplaceStep::kRefuse) {
      // The new worker cannot run (a plugin that does not load, a start()
      // that throws): keep the old one serving with the old settings rather
      // than leave the broker without a worker.
      // The broker's name as configured holds its password: log the
      // redacted form, as every other line does.
      const std::string why = replace_failure(fresh);
      SBUS_LOG(kError) << "replacement worker for " << redacted(replacing_->broker)
                       << " failed to start; the previous worker keeps serving"
                       << (why.empty() ? "" : " (" + why + ")");
      if (fresh != nullptr) erase(*fresh);
      replacing_.reset();
      // The next reload tries again, even with the same files.
      stamps_.clear();
      return;
    }
    if (old != nullptr && old->state == WorkerState::kRunning) {
      if (step == ReplaceStep::kSwapLate) {
        SBUS_LOG(kWarn) << "replacement for " << old->name() << " not connected in time; replacing anyway";
      }
      old->state = WorkerState::kDraining;
      launcher_.signal(old->pid, SIGTERM);
    }
    // From now on it is the broker's worker: a restart serves what it can.
    fresh->history.replacing = false;
    replacing_.reset();
  }
  while (!to_replace_.empty()) {
    const std::string broker = to_replace_.front();
    to_replace_.pop_front();
    auto old = std::find_if(workers_.begin(), workers_.end(), [&](const WorkerRecord& w) {
      return w.broker == broker && w.state == WorkerState::kRunning;
    });
    auto index = std::find(config_->brokers.begin(), config_->brokers.end(), broker);
    if (old == workers_.end() || index == config_->brokers.end()) continue;
    const pid_t old_pid = old->pid;
    // The old one keeps serving until the new one consumes.
    WorkerRecord& fresh = add_worker(broker, static_cast<std::size_t>(index - config_->brokers.begin()));
    fresh.history.replacing = true;
    spawn(fresh);
    replacing_ = Replacement{broker, old_pid, fresh.id, clock_.now() + kReplaceTimeout};
    SBUS_LOG(kInfo) << "replacing worker pid " << old_pid << " for " << fresh.name() << " with pid " << fresh.pid;
    return;
  }
}

}  // namespace sbus
