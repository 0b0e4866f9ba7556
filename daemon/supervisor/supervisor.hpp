// The supervisor process: forks one worker per broker (each loads the worker
// module, base/worker_entry.hpp), restarts the ones that die, reloads the
// config on SIGHUP and stops everything on SIGTERM or SIGINT. It never runs
// plugin code nor maps the libraries that serving needs: plugin checks run
// in throwaway workers.
//
// run_supervisor() is the process's loop: signals are blocked and read from
// a signalfd, and each poll wake-up is one Supervisor::turn(). The
// Supervisor itself does no waiting: it starts, signals and reaps children
// through a WorkerLauncher and reads time from a Clock, so that unit tests
// drive it with fakes (tests/unit/supervisor_test.cpp). Single-threaded.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "supervisor/clock.hpp"
#include "supervisor/config_check.hpp"
#include "supervisor/isolated_services.hpp"
#include "supervisor/log_file.hpp"
#include "supervisor/metrics_process.hpp"
#include "supervisor/reload_plan.hpp"
#include "supervisor/systemd_notify.hpp"
#include "supervisor/worker_launcher.hpp"
#include "supervisor/worker_record.hpp"

namespace sbus {

class CrashJournal;
class ReplayCache;

// Longest wait for a new worker to connect before the one it replaces is
// stopped anyway (its broker may be down: the old one could not serve either).
inline constexpr std::chrono::seconds kReplaceTimeout{30};
// READY=1 at start is sent once every worker is connected, or after this.
inline constexpr std::chrono::seconds kReadyTimeout{10};
// How long a worker may take past drain_timeout before SIGKILL, and between
// two rounds of SIGKILL.
inline constexpr std::chrono::seconds kKillGrace{5};
// How often the metrics server gets a snapshot when nothing changed
// (uptime, memory), and how soon it starts again after it ended.
inline constexpr std::chrono::seconds kMetricsPublishInterval{1};
inline constexpr std::chrono::seconds kMetricsRestartDelay{5};
// The longest metrics report of a worker kept; the rest is cut.
inline constexpr std::size_t kMaxMetricsReport = 4 * 1024 * 1024;

struct SupervisorSettings {
  std::string path;  // the YAML file, read again on every reload
  ConfigOverrides overrides;
  std::chrono::milliseconds check_timeout{kDefaultCheckTimeout};
};

// Sets the log's format and fields from `config` (log_set_output()),
// warning when the journal was asked for and cannot be used.
void set_log_output(const Config& config);

class Supervisor {
 public:
  // The signals read since the last turn.
  struct Signals {
    bool stop = false;        // SIGTERM or SIGINT
    bool reload = false;      // SIGHUP
    bool reopen_log = false;  // SIGUSR1
  };

  // `config` is the one loaded (and checked) at start. The launcher, clock
  // and notifier are the caller's and outlive the Supervisor.
  Supervisor(SupervisorSettings settings, Config config, WorkerLauncher& launcher, Clock& clock,
             SystemdNotifier& notifier);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Opens the log file and the memory shared with workers, and starts a
  // worker per broker. False (logged) when sbusd cannot start: exit code 1.
  bool start();

  // One turn of the loop, in a fixed order: reap every exited child, then
  // stop, then reload, then log reopen; then status reports, and either the
  // stop's KILL escalation or replacements, due restarts, STATUS= and the
  // watchdog. False once stopping and every worker has exited.
  bool turn(const Signals& signals);

  // After the last turn: closes the status pipes, stops the metrics server
  // and logs the stop.
  void finish();

  // What the loop waits on before the next turn: any of these readable, or
  // at most this long.
  std::vector<int> wait_fds() const;
  std::chrono::milliseconds wait_timeout() const;

  const std::deque<WorkerRecord>& workers() const { return workers_; }
  // The processes of isolated services (isolated_services.hpp).
  const IsolatedServices& isolated() const { return isolated_; }
  const Config& config() const { return *config_; }
  bool stopping() const { return stopping_; }
  bool reload_running() const { return reload_check_ != nullptr; }
  // The crash journal shared with the workers (nullptr before start(), or
  // when it could not be mapped).
  CrashJournal* journal() const { return journal_; }

 private:
  // A worker to be replaced, waiting for its replacement to connect.
  struct Replacement {
    std::string broker;
    pid_t old_pid = -1;
    std::uint64_t new_id = 0;
    Clock::TimePoint deadline{};
  };

  WorkerRecord& add_worker(const std::string& broker, std::size_t index);
  WorkerRecord* find(pid_t pid);
  WorkerRecord* find_id(std::uint64_t id);
  void erase(const WorkerRecord& worker);
  void spawn(WorkerRecord& worker);
  void reap();
  void worker_exited(WorkerRecord& worker, pid_t pid, int status);
  void read_status(WorkerRecord& worker);
  void close_status(WorkerRecord& worker);
  void begin_stop();
  void step_stop();
  bool any_alive() const;
  void start_reload();
  void step_reload();
  void reload();
  void refuse_reload(const std::vector<std::string>& problems);
  void apply(const ReloadPlan& plan, std::shared_ptr<const Config> config, PluginStamps stamps);
  void step_replacement();
  void spawn_due(Clock::TimePoint now);
  void update_status();
  void reopen_log();
  void start_metrics();
  void publish_metrics(Clock::TimePoint now);
  bool open_replay(const Config& config, std::string* error);
  void open_journal();
  void log_returned(const WorkerRecord& worker, pid_t pid, int returned);

  SupervisorSettings settings_;
  WorkerLauncher& launcher_;
  Clock& clock_;
  SystemdNotifier& notifier_;
  std::shared_ptr<const Config> config_;
  PluginStamps stamps_;
  std::deque<WorkerRecord> workers_;  // deque: records keep their address
  IsolatedServices isolated_;
  std::uint64_t next_id_ = 0;
  // The check of a reload under way, and whether another SIGHUP came
  // meanwhile (one more reload follows it).
  std::unique_ptr<ConfigCheck> reload_check_;
  bool reload_again_ = false;
  std::deque<std::string> to_replace_;  // brokers, replaced one at a time
  std::optional<Replacement> replacing_;

  CrashJournal* journal_ = nullptr;
  ReplayCache* replay_ = nullptr;
  std::string replay_file_;  // replay_'s file; empty: in memory only
  std::unique_ptr<LogFile> log_file_;
  // The metrics server (metrics_listen), and when to send it the next
  // snapshot or start it again; status_changed_: a worker wrote since.
  std::unique_ptr<MetricsProcess> metrics_;
  Clock::TimePoint next_publish_{};
  Clock::TimePoint metrics_restart_at_{};
  bool status_changed_ = false;
  bool stopping_ = false;
  bool ready_sent_ = false;
  Clock::TimePoint started_{};
  Clock::TimePoint kill_at_{};
  Clock::TimePoint next_watchdog_{};
};

// The sbusd process after its config checked: runs a Supervisor with the
// real launcher and clock until stopped; returns the process exit code (0
// after a clean stop). `path` and `overrides` are read again on every
// reload, in a child process (config_check.hpp) given up on after
// `check_timeout`: meanwhile the loop goes on (signals, restarts), and a
// check that fails or is given up on leaves the running config as it is.
int run_supervisor(const std::string& path, const ConfigOverrides& overrides, Config config,
                   std::chrono::milliseconds check_timeout = kDefaultCheckTimeout);

}  // namespace sbus
