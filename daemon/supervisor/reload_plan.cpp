#include "supervisor/reload_plan.hpp"

#include <algorithm>

namespace sbus {

std::size_t ReloadPlan::count(Step step) const {
  return static_cast<std::size_t>(
      std::count_if(brokers.begin(), brokers.end(), [step](const Broker& broker) { return broker.step == step; }));
}

ReloadPlan plan_reload(const ReloadInput& input) {
  ReloadPlan plan;
  if (!input.problems.empty()) {
    plan.problems = input.problems;
    return plan;
  }
  const std::vector<std::string>& brokers = input.loaded.brokers;
  plan.settings_changed =
      worker_settings_differ(input.running, input.loaded) || input.running_stamps != input.loaded_stamps;
  plan.retired_bindings = retired_bindings(input.running, input.loaded);
  for (const WorkerRecord& worker : input.workers) {
    if (worker.state == WorkerState::kDraining ||
        std::find(brokers.begin(), brokers.end(), worker.broker) != brokers.end()) {
      continue;
    }
    (worker.pid > 0 ? plan.drain : plan.drop).push_back(worker.id);
  }
  for (std::size_t i = 0; i < brokers.size(); ++i) {
    // The first record of the broker that is not draining: during a
    // replacement, the old worker (it comes first) rather than the new one.
    auto current = std::find_if(input.workers.begin(), input.workers.end(), [&](const WorkerRecord& w) {
      return w.broker == brokers[i] && w.state != WorkerState::kDraining;
    });
    ReloadPlan::Broker step;
    step.index = i;
    if (current == input.workers.end()) {
      step.step = ReloadPlan::Step::kStart;
    } else if (!plan.settings_changed || current->pid <= 0) {
      // Unchanged, or not running: it takes the new config as it is.
      step.step = ReloadPlan::Step::kAdopt;
      step.worker = current->id;
      step.restart = current->state == WorkerState::kFailed;
    } else {
      step.step = ReloadPlan::Step::kReplace;
      step.worker = current->id;
    }
    plan.brokers.push_back(step);
  }
  return plan;
}

}  // namespace sbus
