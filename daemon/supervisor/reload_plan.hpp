// What a reload (SIGHUP) does to the running workers, decided as a value
// with no I/O: given the worker records, the running config and the newly
// loaded one (and the plugin files' stamps of both), plan_reload() says
// which workers to start, drain, replace or keep. The Supervisor carries the
// plan out (supervisor.cpp); tests check plans alone (reload_plan_test.cpp).
//
// The rules, as nginx keeps its old cycle when a new one fails:
// - a new config that did not load (or whose state_dir did not open) is
//   refused whole: nothing changes;
// - a broker no longer listed: its worker drains (SIGTERM), or its record
//   goes when it has no process;
// - a broker newly listed: a worker starts for it;
// - a broker still listed, when no worker setting changed
//   (worker_settings_differ()) and no plugin file changed its content
//   (plugin_stamps.hpp): its worker
//   keeps running and takes the new config at its next start; one that had
//   given up (kFailed) starts again;
// - otherwise its worker is replaced, one broker at a time: the new worker
//   starts and the old one drains once the new one consumes;
// - the event bindings the new config drops are retired: its workers unbind
//   them on connecting, after binding their own, and the durable queues keep
//   every event of a topic still subscribed while old and new workers share
//   them.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "supervisor/plugin_stamps.hpp"
#include "supervisor/worker_record.hpp"

namespace sbus {

struct ReloadPlan {
  enum class Step {
    kStart,    // a broker newly listed: start a worker
    kAdopt,    // the worker keeps running and takes the new config
    kReplace,  // a new worker with the new config, then the old one drains
  };
  struct Broker {
    Step step = Step::kStart;
    std::size_t index = 0;     // in the new config's brokers
    std::uint64_t worker = 0;  // kAdopt, kReplace: the id of its current worker
    bool restart = false;      // kAdopt: that worker had given up; start it again

    bool operator==(const Broker&) const = default;
  };

  // Why the new config is refused; when set, nothing else is.
  std::vector<std::string> problems;
  bool settings_changed = false;  // worker settings or plugin files differ
  // Workers of brokers no longer listed, in record order: those with a
  // process drain, the others' records are dropped.
  std::vector<std::uint64_t> drain;
  std::vector<std::uint64_t> drop;
  // One entry per broker of the new config, in its order.
  std::vector<Broker> brokers;
  // Event bindings the running config has and the new one does not: the
  // new workers remove them (Config::retired_bindings). The queues stay,
  // with what they hold.
  std::vector<EventBinding> retired_bindings;

  bool refused() const { return !problems.empty(); }
  std::size_t count(Step step) const;
  std::size_t removed() const { return drain.size() + drop.size(); }
};

struct ReloadInput {
  const std::deque<WorkerRecord>& workers;
  const Config& running;
  const PluginStamps& running_stamps;
  const Config& loaded;
  const PluginStamps& loaded_stamps;
  // Problems found while loading `loaded`: any refuses it.
  const std::vector<std::string>& problems;
};

ReloadPlan plan_reload(const ReloadInput& input);

}  // namespace sbus
