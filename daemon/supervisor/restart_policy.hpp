// When to restart a worker that exited. Pure: no clock, fork or sleep
// inside, so tests drive it with made-up times.
//
// A worker that dies within `healthy_after` of its start counts as a rapid
// failure and waits `first_delay` doubled per rapid failure, up to
// `max_delay`. One that ran at least `healthy_after` starts again after
// `first_delay` with its count reset. A fatal exit (a config or plugin
// problem no restart can fix) gives up. A crash that the crash journal
// pins on the calls it was running is explained: those calls will not run
// again (they are answered `interrupted`, and a service that keeps crashing
// is switched off by the worker), so the worker restarts at once, and the
// crash neither waits nor counts as a rapid failure: the other services of
// the node are down only for the time a restart takes.
#pragma once

#include <chrono>

namespace sbus {

struct RestartOptions {
  std::chrono::milliseconds first_delay{100};
  std::chrono::milliseconds max_delay{30000};
  std::chrono::milliseconds healthy_after{10000};
};

class RestartPolicy {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  struct Decision {
    bool give_up = false;
    TimePoint restart_at{};
  };

  enum class Exit {
    kFailure,          // an exit or crash nobody explained
    kFatal,            // kWorkerExitFatal
    kCrashDuringCall,  // killed by a signal while running calls the journal names
  };

  explicit RestartPolicy(RestartOptions options = {}) : options_(options) {}

  Decision on_exit(Exit exit, std::chrono::milliseconds uptime, TimePoint now);
  Decision on_exit(bool fatal, std::chrono::milliseconds uptime, TimePoint now) {
    return on_exit(fatal ? Exit::kFatal : Exit::kFailure, uptime, now);
  }
  int rapid_failures() const { return rapid_failures_; }

 private:
  RestartOptions options_;
  int rapid_failures_ = 0;
};

}  // namespace sbus
