// What the supervisor knows of one worker: a value record, as nginx's
// ngx_process_t. Owned by the Supervisor (supervisor.hpp); read by the
// reload plan (reload_plan.hpp) and by tests.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/worker_entry.hpp"
#include "config/config.hpp"
#include "supervisor/restart_policy.hpp"

namespace sbus {

enum class WorkerState {
  kRunning,         // has a process (pid > 0) that serves or starts to
  kWaitingRestart,  // no process; the next one starts at restart_at
  kDraining,        // told to stop (SIGTERM); its record goes once it exits
  kFailed,          // exited fatally; not started again until a reload
};

struct WorkerRecord {
  using TimePoint = std::chrono::steady_clock::time_point;

  std::uint64_t id = 0;                  // stable across restarts, unlike pid
  std::string broker;                    // the URI as written: the worker's identity
  std::shared_ptr<const Config> config;  // the config it runs with
  std::size_t broker_index = 0;          // its broker in config->broker_uris
  pid_t pid = -1;
  WorkerState state = WorkerState::kWaitingRestart;
  bool connected = false;
  int status_fd = -1;
  // What its status pipe said of services that could not start
  // ("CATEGORY.SERVICE: REASON"), and a record not yet ended by its line feed.
  std::vector<std::string> unavailable;
  std::string partial;
  bool in_record = false;
  // The last metrics report (kStatusMetrics): sample lines, each ended by
  // a line feed. Kept across a restart until the new run reports, so that
  // a scrape shows the last known values while no worker runs.
  std::string metrics;
  std::string metrics_partial;
  bool in_metrics = false;
  WorkerHistory history;  // handed to each run; restarts counted at each start
  bool spawned = false;
  TimePoint started_at{};
  TimePoint restart_at{};
  RestartPolicy policy;

  std::string name() const { return config->broker_uris[broker_index].redacted(); }
};

}  // namespace sbus
