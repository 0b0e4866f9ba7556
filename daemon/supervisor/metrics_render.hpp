// What the metrics server answers (base/metrics_entry.hpp), made by the
// supervisor from its worker records and the last report of each worker:
// the Prometheus text of GET /metrics (families of base/metrics_catalog.hpp,
// docs/metrics.md) and the status lines of GET /healthz and /readyz.
// Pure but for reading /proc for memory; the supervisor's loop calls it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>

#include "base/metrics_entry.hpp"
#include "config/config.hpp"
#include "supervisor/worker_record.hpp"

namespace sbus {

struct MetricsView {
  const Config& config;
  const std::deque<WorkerRecord>& workers;
  std::chrono::duration<double> uptime;  // of the supervisor
  pid_t metrics_pid = -1;                // the metrics server, for its memory
  bool stopping = false;
};

MetricsSnapshot render_metrics(const MetricsView& view);

// The worker record whose state and report stand for `broker`: the
// connected one during a replacement, else the newest. Null when none.
const WorkerRecord* record_of(const std::deque<WorkerRecord>& workers, const std::string& broker);

}  // namespace sbus
