// The processes of isolated services (docs/isolation.md): one per broker
// and service with `isolate: true`, started, restarted and stopped by the
// supervisor beside its workers, each with the workers' restart policy.
// Once a second the RSS of each one with a memory_limit is sampled; one
// over it is killed (SIGKILL) and restarted, and the log says why.
//
// Owned by the Supervisor, which calls it at the same points of its turn
// as for its workers: reap (exited()), status pipes, due restarts, stop.
// Single-threaded, like the supervisor.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "supervisor/clock.hpp"
#include "supervisor/reload_plan.hpp"
#include "supervisor/worker_launcher.hpp"
#include "supervisor/worker_record.hpp"

namespace sbus {

class CrashJournal;

// How often the RSS of an isolated process is compared to its memory_limit.
inline constexpr std::chrono::seconds kMemorySampleInterval{1};

struct IsolatedRecord {
  WorkerRecord process;  // its broker, pid, state, status pipe and restart policy
  std::size_t service_index = 0;
  std::string service;  // CATEGORY.SERVICE
  std::uint64_t memory_limit = 0;
  // Why the supervisor killed it, said when it is reaped; empty: it was not.
  std::string killed_for;

  // "isolated CATEGORY.SERVICE for BROKER", for the log.
  std::string name() const { return "isolated " + service + " for " + process.name(); }
};

class IsolatedServices {
 public:
  // The RSS in bytes of a process; 0 when it cannot be read. Tests fake it.
  using RssReader = std::function<std::uint64_t(pid_t)>;

  IsolatedServices(WorkerLauncher& launcher, Clock& clock, RssReader rss = {});
  ~IsolatedServices();
  IsolatedServices(const IsolatedServices&) = delete;
  IsolatedServices& operator=(const IsolatedServices&) = delete;

  // Starts the processes `config` asks for. `journal` (may be null)
  // outlives this.
  void start(std::shared_ptr<const Config> config, CrashJournal* journal);
  // After a reload: a process whose service entry or plugin file changed,
  // or that is no longer configured, is stopped (SIGTERM: it answers the
  // call it runs) and, when still configured, started anew; the others
  // keep running, and one that had given up (a fatal exit) starts again.
  void reload(std::shared_ptr<const Config> config, const PluginStamps& before, const PluginStamps& after);

  // The child `pid` ended: true when it was one of these (then restarted
  // after its policy's delay, unless `stopping`).
  bool exited(pid_t pid, int status, bool stopping);
  // Reads every status pipe (a service that could not start).
  void read_status();
  // Restarts due ones; samples memory once a second.
  void step(Clock::TimePoint now);
  // SIGTERM to each one (begin_stop), or SIGKILL (past the drain deadline).
  void signal_all(int signal);
  bool any_alive() const;

  void add_fds(std::vector<int>* fds) const;
  // The longest the loop may sleep before step() has work.
  std::chrono::milliseconds timeout(Clock::TimePoint now) const;

  const std::deque<IsolatedRecord>& records() const { return records_; }

 private:
  void add(std::shared_ptr<const Config> config, std::size_t broker, std::size_t service);
  void spawn(IsolatedRecord& record);
  void sample_memory();
  void close_status(WorkerRecord& process);

  WorkerLauncher& launcher_;
  Clock& clock_;
  RssReader rss_;
  CrashJournal* journal_ = nullptr;
  std::deque<IsolatedRecord> records_;  // deque: records keep their address
  std::uint64_t next_id_ = 0;
  Clock::TimePoint next_sample_{};
};

// The RSS of `pid` from /proc/PID/statm; 0 when it cannot be read.
std::uint64_t read_rss(pid_t pid);

}  // namespace sbus
