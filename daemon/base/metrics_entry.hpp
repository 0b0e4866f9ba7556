// The contract between the supervisor and the metrics module,
// sbus-metrics.so, which serves `metrics_listen` over HTTP.
//
// An HTTP server library maps a TLS library, which the supervisor must not
// (docs/architecture.md). So the supervisor forks a small process that
// loads the module and calls sbus_metrics_serve(); it hands that process a
// snapshot through a pipe whenever what it knows changes (what the workers
// report, and their state). A scrape is answered from the last snapshot:
// it never waits on the supervisor or on a busy worker.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace sbus {

// What the metrics server answers until the next snapshot.
struct MetricsSnapshot {
  int health_status = 503;  // GET /healthz: 200 or 503
  std::string health;       // its body: one line
  int ready_status = 503;   // GET /readyz
  std::string ready;
  std::string metrics;  // GET /metrics: Prometheus text format 0.0.4
};

// One snapshot as it goes through the pipe.
std::string encode_snapshot(const MetricsSnapshot& snapshot);

// Reads snapshots out of the bytes of the pipe as they come.
class SnapshotReader {
 public:
  void add(const char* bytes, std::size_t size) { buffer_.append(bytes, size); }
  // The next whole snapshot, or nullopt when it has not all come yet. A
  // frame that is not one (a broken invariant) ends the process.
  std::optional<MetricsSnapshot> next();

 private:
  std::string buffer_;
};

// Exit code of the metrics process when its module cannot load.
inline constexpr int kMetricsExitNoModule = 2;

}  // namespace sbus

extern "C" {
// Serves `listen` (base/listen_address.hpp) from the snapshots read from
// `snapshot_fd`, until that pipe ends (the supervisor is gone) or SIGTERM.
// An address that cannot be bound is logged and tried again every few
// seconds. Logs at `log_level` (a sbus::LogLevel). Returns the process's
// exit code.
int sbus_metrics_serve(const char* listen, int snapshot_fd, int log_level);
}
