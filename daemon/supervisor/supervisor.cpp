#include "supervisor/supervisor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <utility>

#include "base/crash_journal.hpp"
#include "base/log.hpp"
#include "base/replay_cache.hpp"
#include "supervisor/config_check.hpp"
#include "supervisor/log_file.hpp"
#include "supervisor/restart_policy.hpp"
#include "supervisor/systemd_notify.hpp"
#include "supervisor/worker_process.hpp"
#include "base/worker_entry.hpp"

namespace sbus {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

// Longest wait for a new worker to connect before the one it replaces is
// stopped anyway (its broker may be down: the old one could not serve either).
constexpr std::chrono::seconds kReplaceTimeout{30};
// READY=1 at start is sent once every worker is connected, or after this.
constexpr std::chrono::seconds kReadyTimeout{10};

enum class WorkerState { kRunning, kWaitingRestart, kDraining, kFailed };

struct WorkerRecord {
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
  WorkerHistory history;  // handed to each run; restarts counted in spawn()
  bool spawned = false;
  Clock::time_point started_at{};
  Clock::time_point restart_at{};
  RestartPolicy policy;

  std::string name() const { return config->broker_uris[broker_index].redacted(); }
};

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "ended";
}

// Plugin files by path: size and modification time, to see a replaced .so.
using PluginStamps = std::map<std::string, std::pair<off_t, std::int64_t>>;

PluginStamps stamp_plugins(const Config& config) {
  PluginStamps stamps;
  for (const ServiceConfig& service : config.services) {
    struct stat info {};
    if (::stat(service.plugin_path.c_str(), &info) == 0) {
      stamps[service.plugin_path] = {info.st_size, static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1000000000 +
                                                       info.st_mtim.tv_nsec};
    }
  }
  return stamps;
}

class Supervisor {
 public:
  Supervisor(std::string path, ConfigOverrides overrides, Config config, milliseconds check_timeout)
      : path_(std::move(path)),
        overrides_(std::move(overrides)),
        config_(std::make_shared<const Config>(std::move(config))),
        stamps_(stamp_plugins(*config_)),
        check_timeout_(check_timeout) {}

  int run();

 private:
  WorkerRecord* find(pid_t pid);
  void spawn(WorkerRecord& worker);
  void reap();
  void read_status(WorkerRecord& worker);
  void begin_stop();
  void start_reload();
  void step_reload();
  void reload();
  void reopen_log();
  bool open_replay(const Config& config, std::string* error);
  void step_replacement();
  void update_status();
  void close_status(WorkerRecord& worker);
  bool any_alive() const;

  std::string path_;
  ConfigOverrides overrides_;
  std::shared_ptr<const Config> config_;
  PluginStamps stamps_;
  milliseconds check_timeout_;
  std::deque<WorkerRecord> workers_;  // deque: records keep their address
  // The check of a reload under way, and whether another SIGHUP came
  // meanwhile (one more reload follows it).
  std::unique_ptr<ConfigCheck> reload_check_;
  bool reload_again_ = false;

  // A worker to be replaced, waiting for its replacement to connect.
  struct Replacement {
    std::string broker;
    pid_t old_pid = -1;
    std::uint64_t new_id = 0;
    Clock::time_point deadline{};
  };
  WorkerRecord& add_worker(const std::string& broker, std::size_t index);
  WorkerRecord* find_id(std::uint64_t id);
  std::uint64_t next_id_ = 0;
  std::deque<std::string> to_replace_;
  std::optional<Replacement> replacing_;

  CrashJournal* journal_ = nullptr;
  ReplayCache* replay_ = nullptr;
  std::string replay_file_;  // replay_'s file; empty: in memory only
  SystemdNotifier notifier_;
  std::unique_ptr<LogFile> log_file_;
  int signal_fd_ = -1;
  bool stopping_ = false;
  bool ready_sent_ = false;
  Clock::time_point started_{};
  Clock::time_point kill_at_{};
  Clock::time_point next_watchdog_{};
};

WorkerRecord& Supervisor::add_worker(const std::string& broker, std::size_t index) {
  WorkerRecord& worker = workers_.emplace_back();
  worker.id = ++next_id_;
  worker.broker = broker;
  worker.config = config_;
  worker.broker_index = index;
  return worker;
}

WorkerRecord* Supervisor::find_id(std::uint64_t id) {
  for (WorkerRecord& worker : workers_) {
    if (worker.id == id) return &worker;
  }
  return nullptr;
}

WorkerRecord* Supervisor::find(pid_t pid) {
  for (WorkerRecord& worker : workers_) {
    if (worker.pid == pid) return &worker;
  }
  return nullptr;
}

void Supervisor::spawn(WorkerRecord& worker) {
  int status_pipe[2];
  std::string error;
  pid_t pid = -1;
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
    error = std::string("pipe failed: ") + std::strerror(errno);
  } else {
    WorkerStart start;
    start.config = worker.config.get();
    start.broker_index = worker.broker_index;
    start.out_fd = status_pipe[1];
    start.close_fd = status_pipe[0];
    start.journal = journal_;
    start.replay = replay_;
    if (worker.spawned) ++worker.history.restarts;
    worker.spawned = true;
    start.history = &worker.history;
    pid = fork_worker(start, &error);
    ::close(status_pipe[1]);
    if (pid < 0) ::close(status_pipe[0]);
  }
  if (pid < 0) {
    SBUS_LOG(kError) << "cannot start a worker for " << worker.name() << ": " << error << "; retrying in 1 s";
    worker.state = WorkerState::kWaitingRestart;
    worker.restart_at = Clock::now() + std::chrono::seconds(1);
    return;
  }
  ::fcntl(status_pipe[0], F_SETFL, O_NONBLOCK);
  close_status(worker);
  worker.unavailable.clear();
  worker.partial.clear();
  worker.in_record = false;
  worker.status_fd = status_pipe[0];
  worker.pid = pid;
  worker.state = WorkerState::kRunning;
  worker.connected = false;
  worker.started_at = Clock::now();
  SBUS_LOG(kInfo) << "worker for " << worker.name() << " started, pid " << pid;
}

void Supervisor::close_status(WorkerRecord& worker) {
  if (worker.status_fd >= 0) ::close(worker.status_fd);
  worker.status_fd = -1;
}

void Supervisor::read_status(WorkerRecord& worker) {
  char bytes[64];
  ssize_t n;
  while (worker.status_fd >= 0 && (n = ::read(worker.status_fd, bytes, sizeof(bytes))) > 0) {
    for (ssize_t i = 0; i < n; ++i) {
      const char byte = bytes[i];
      if (worker.in_record) {
        if (byte != '\n') {
          if (worker.partial.size() < 4096) worker.partial += byte;
          continue;
        }
        SBUS_LOG(kError) << "worker pid " << worker.pid << " for " << worker.name()
                         << ": service unavailable: " << worker.partial;
        worker.unavailable.push_back(std::move(worker.partial));
        worker.partial.clear();
        worker.in_record = false;
      } else if (byte == kStatusUnavailable) {
        worker.in_record = true;
      } else if (byte == kStatusConnected) {
        worker.connected = true;
      } else if (byte == kStatusDisconnected) {
        worker.connected = false;
      }
    }
  }
}

void Supervisor::reap() {
  int status = 0;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    if (reload_check_ && pid == reload_check_->pid()) {
      reload_check_->exited(status);
      continue;
    }
    WorkerRecord* found = find(pid);
    if (found == nullptr) continue;
    WorkerRecord& worker = *found;
    read_status(worker);
    close_status(worker);
    worker.pid = -1;
    worker.connected = false;
    const auto now = Clock::now();
    const bool crashed = WIFSIGNALED(status);
    int interrupted = 0;
    if (journal_ != nullptr) {
      const auto now_ns = duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
      interrupted = journal_->worker_died(pid, crashed, now_ns);
      if (interrupted > 0) {
        SBUS_LOG(kWarn) << "worker pid " << pid << " died during " << interrupted
                        << " call(s); they will be answered `interrupted` if redelivered";
      }
    }
    const auto uptime = duration_cast<milliseconds>(now - worker.started_at);
    worker.history.last_exit_unix_ms = duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::snprintf(worker.history.last_exit, sizeof(worker.history.last_exit), "%s", describe_status(status).c_str());
    if (worker.state == WorkerState::kDraining || stopping_) {
      // A signal is a crash even while stopping (or the KILL after the
      // drain deadline): never at info.
      if (crashed) {
        SBUS_LOG(kError) << "worker for " << worker.name() << " (pid " << pid << ") " << describe_status(status);
      } else {
        SBUS_LOG(kInfo) << "worker for " << worker.name() << " (pid " << pid << ") " << describe_status(status);
      }
      // Drained workers are done: drop their records.
      workers_.erase(std::find_if(workers_.begin(), workers_.end(),
                                  [&](const WorkerRecord& w) { return &w == &worker; }));
      continue;
    }
    RestartPolicy::Exit exit = RestartPolicy::Exit::kFailure;
    if (WIFEXITED(status) && WEXITSTATUS(status) == kWorkerExitFatal) exit = RestartPolicy::Exit::kFatal;
    if (crashed && interrupted > 0) exit = RestartPolicy::Exit::kCrashDuringCall;
    RestartPolicy::Decision decision = worker.policy.on_exit(exit, uptime, now);
    if (decision.give_up) {
      worker.state = WorkerState::kFailed;
      SBUS_LOG(kError) << "worker for " << worker.name() << " (pid " << pid << ") " << describe_status(status)
                       << ": fatal, not restarting until the next reload";
      continue;
    }
    worker.state = WorkerState::kWaitingRestart;
    worker.restart_at = decision.restart_at;
    std::ostringstream what;
    what << "worker for " << worker.name() << " (pid " << pid << ") " << describe_status(status) << " after "
         << uptime.count() << " ms; restarting in " << duration_cast<milliseconds>(decision.restart_at - now).count()
         << " ms";
    if (exit == RestartPolicy::Exit::kCrashDuringCall) what << " (the crash is pinned on the calls it was running)";
    if (crashed) {
      SBUS_LOG(kError) << what.str();
    } else {
      SBUS_LOG(kWarn) << what.str();
    }
  }
}

void Supervisor::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  notifier_.stopping();
  SBUS_LOG(kInfo) << "stopping: draining workers";
  if (reload_check_) {
    SBUS_LOG(kInfo) << "stopping: the reload under way is abandoned";
    reload_check_->kill();
    reload_check_.reset();
  }
  // Workers drain for up to drain_timeout; past that and a grace period, KILL.
  kill_at_ = Clock::now() + std::chrono::seconds(config_->drain_timeout_seconds + 5);
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->pid > 0) {
      ::kill(it->pid, SIGTERM);
      ++it;
    } else {
      close_status(*it);
      it = workers_.erase(it);
    }
  }
}

// The nonces of hmac calls, for the workers forked from now on: in
// state_dir's file when `config` accepts hmac tokens (so that they outlive
// a restart), else in memory. Kept when already right for `config`.
bool Supervisor::open_replay(const Config& config, std::string* error) {
  if (!accepts_hmac(config)) {
    // Without it (mmap failed) each worker keeps its own.
    if (replay_ == nullptr) replay_ = ReplayCache::create();
    return true;
  }
  const std::string file = replay_file_of(config);
  if (file == replay_file_) return true;
  ReplayCache* cache = ReplayCache::open_file(file, error);
  if (cache == nullptr) return false;
  // The previous mapping stays: workers forked with it still use it.
  replay_ = cache;
  replay_file_ = file;
  return true;
}

// SIGHUP: the new config is checked in a child (config_check.hpp) while the
// loop goes on; step_reload() applies it once the check passed.
void Supervisor::start_reload() {
  if (reload_check_) {
    reload_again_ = true;
    return;
  }
  notifier_.reloading();
  SBUS_LOG(kInfo) << "reloading " << path_;
  std::string error;
  // start() too: a service that cannot start is refused before any worker
  // is replaced (a worker would serve on without it).
  reload_check_ = ConfigCheck::start(path_, overrides_, check_timeout_, &error, true);
  if (!reload_check_) {
    SBUS_LOG(kError) << "reload failed: cannot check the config: " << error << "; still running the previous config";
    notifier_.ready();
  }
}

// Each turn while a reload's check runs: past its deadline, abandon it;
// once it is done, apply the new config or log why not.
void Supervisor::step_reload() {
  if (!reload_check_) return;
  reload_check_->read();
  if (!reload_check_->done()) {
    if (reload_check_->overdue(Clock::now())) {
      // Reaped by a later turn; the next turns read nothing more of it.
      reload_check_->kill();
      SBUS_LOG(kError) << "reload: the config check (pid " << reload_check_->pid() << ") did not finish within "
                       << check_timeout_.count() << " ms: abandoned; still running the previous config";
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
    for (const std::string& problem : problems) SBUS_LOG(kError) << "reload: " << problem;
    SBUS_LOG(kError) << "reload failed: " << problems.size() << " problem(s); still running the previous config";
    notifier_.ready();
  }
  if (std::exchange(reload_again_, false) && !stopping_) start_reload();
}

// Applies the config that a check has just passed.
void Supervisor::reload() {
  Config loaded;
  std::vector<std::string> problems;
  // The check passed: the file reads at once (unless replaced since, which
  // the load reports like any problem).
  load_config(path_, overrides_, &loaded, &problems);
  if (!problems.empty()) {
    for (const std::string& problem : problems) SBUS_LOG(kError) << "reload: " << problem;
    SBUS_LOG(kError) << "reload failed: " << problems.size() << " problem(s); still running the previous config";
    notifier_.ready();
    return;
  }
  if (std::string error; !open_replay(loaded, &error)) {
    SBUS_LOG(kError) << "reload: state_dir: " << error;
    SBUS_LOG(kError) << "reload failed: 1 problem(s); still running the previous config";
    notifier_.ready();
    return;
  }
  auto config = std::make_shared<const Config>(std::move(loaded));
  PluginStamps stamps = stamp_plugins(*config);
  const bool changed = worker_settings_differ(*config_, *config) || stamps != stamps_;
  log_init("supervisor", config->log_level);

  int added = 0;
  int removed = 0;
  // Removed brokers: drain their workers.
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (std::find(config->brokers.begin(), config->brokers.end(), it->broker) != config->brokers.end() ||
        it->state == WorkerState::kDraining) {
      ++it;
      continue;
    }
    ++removed;
    if (it->pid > 0) {
      SBUS_LOG(kInfo) << "broker " << it->name() << " removed: draining its worker pid " << it->pid;
      it->state = WorkerState::kDraining;
      ::kill(it->pid, SIGTERM);
      ++it;
    } else {
      close_status(*it);
      it = workers_.erase(it);
    }
  }
  to_replace_.clear();
  for (std::size_t i = 0; i < config->brokers.size(); ++i) {
    const std::string& broker = config->brokers[i];
    auto current = std::find_if(workers_.begin(), workers_.end(), [&](const WorkerRecord& w) {
      return w.broker == broker && w.state != WorkerState::kDraining;
    });
    if (current == workers_.end()) {
      ++added;
      WorkerRecord& worker = add_worker(broker, i);
      worker.config = config;
      spawn(worker);
      continue;
    }
    if (!changed || current->pid <= 0) {
      // Unchanged, or not running: take the new config as it is.
      current->config = config;
      current->broker_index = i;
      if (current->state == WorkerState::kFailed) spawn(*current);
      continue;
    }
    to_replace_.push_back(broker);
  }
  config_ = config;
  stamps_ = std::move(stamps);
  SBUS_LOG(kInfo) << "reload: " << added << " broker(s) added, " << removed << " removed, "
                  << to_replace_.size() << " worker(s) to replace one at a time";
  notifier_.ready();
}

// Replaces the workers in to_replace_ one at a time: start the new one,
// wait until it consumes, then drain the old one.
void Supervisor::step_replacement() {
  if (replacing_) {
    WorkerRecord* fresh = find_id(replacing_->new_id);
    WorkerRecord* old = find(replacing_->old_pid);
    const bool fresh_up = fresh != nullptr && fresh->connected;
    if (fresh == nullptr || fresh->state == WorkerState::kFailed) {
      // The new worker cannot run (a service's start() failed): keep the
      // old one serving with the old settings rather than leave the broker
      // without a worker.
      SBUS_LOG(kError) << "replacement worker for " << replacing_->broker
                       << " failed to start; the previous worker keeps serving";
      if (fresh != nullptr) {
        const std::uint64_t id = fresh->id;
        workers_.erase(std::find_if(workers_.begin(), workers_.end(),
                                    [id](const WorkerRecord& w) { return w.id == id; }));
      }
      replacing_.reset();
      return;
    }
    if (!fresh_up && Clock::now() < replacing_->deadline) return;
    if (old != nullptr && old->state == WorkerState::kRunning) {
      if (!fresh_up) SBUS_LOG(kWarn) << "replacement for " << old->name() << " not connected in time; replacing anyway";
      old->state = WorkerState::kDraining;
      ::kill(old->pid, SIGTERM);
    }
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
    spawn(fresh);
    replacing_ = Replacement{broker, old_pid, fresh.id, Clock::now() + kReplaceTimeout};
    SBUS_LOG(kInfo) << "replacing worker pid " << old_pid << " for " << fresh.name() << " with pid " << fresh.pid;
    return;
  }
}

bool Supervisor::any_alive() const {
  return std::any_of(workers_.begin(), workers_.end(), [](const WorkerRecord& w) { return w.pid > 0; });
}

void Supervisor::update_status() {
  // A broker counts once, however many of its workers (old and new during a
  // replacement) are connected.
  std::size_t connected = 0;
  for (const std::string& broker : config_->brokers) {
    connected += std::any_of(workers_.begin(), workers_.end(), [&](const WorkerRecord& w) {
      return w.broker == broker && w.connected && w.state == WorkerState::kRunning;
    });
  }
  // A broker is settled once its worker connected or gave up (fatal): READY
  // waits for every broker to settle, and for kReadyTimeout at most (a
  // broker that is down must not keep the unit from starting).
  std::size_t settled = 0;
  std::vector<std::string> unavailable;
  for (const std::string& broker : config_->brokers) {
    settled += std::any_of(workers_.begin(), workers_.end(), [&](const WorkerRecord& w) {
      return w.broker == broker && ((w.connected && w.state == WorkerState::kRunning) || w.state == WorkerState::kFailed);
    });
  }
  for (const WorkerRecord& worker : workers_) {
    if (worker.state != WorkerState::kRunning) continue;
    for (const std::string& service : worker.unavailable) {
      if (std::find(unavailable.begin(), unavailable.end(), service) == unavailable.end()) {
        unavailable.push_back(service);
      }
    }
  }
  const std::size_t brokers = config_->brokers.size();
  if (!ready_sent_ && (settled >= brokers || Clock::now() - started_ >= kReadyTimeout)) {
    ready_sent_ = true;
    notifier_.ready();
    SBUS_LOG(kInfo) << "ready: " << connected << "/" << brokers << " brokers connected"
                    << (unavailable.empty() ? "" : ", " + std::to_string(unavailable.size()) + " service(s) unavailable");
  }
  std::string status = std::to_string(connected) + "/" + std::to_string(brokers) + " brokers connected, " +
                       std::to_string(config_->services.size()) + " services";
  if (stopping_) status += ", stopping";
  for (std::size_t i = 0; i < unavailable.size(); ++i) status += (i == 0 ? "; unavailable: " : "; ") + unavailable[i];
  notifier_.status(status);
}

// SIGUSR1: the log file anew, as nginx does, for an outside logrotate.
void Supervisor::reopen_log() {
  if (!log_file_) {
    SBUS_LOG(kInfo) << "SIGUSR1: no log_file in the config (the log goes to stderr): nothing to reopen";
    return;
  }
  log_file_->pump();
  std::string error;
  if (log_file_->reopen(&error)) {
    SBUS_LOG(kInfo) << "SIGUSR1: log file " << config_->log_file << " reopened";
  } else {
    SBUS_LOG(kError) << "SIGUSR1: " << error << "; still writing to the old file";
  }
}

int Supervisor::run() {
  sigset_t signals;
  sigemptyset(&signals);
  // SIGUSR1 too: its default action would end the process. Workers inherit
  // the mask and so never act on it.
  for (int signal : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&signals, signal);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  signal_fd_ = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd_ < 0) {
    SBUS_LOG(kError) << "signalfd failed: " << std::strerror(errno);
    return 1;
  }
  // A log file set in the YAML is fixed for the life of the process.
  if (!config_->log_file.empty()) {
    log_file_ = std::make_unique<LogFile>(config_->log_file, config_->log_max_bytes, config_->log_keep);
    std::string error;
    if (!log_file_->start(STDERR_FILENO, &error)) {
      SBUS_LOG(kError) << error;
      return 1;
    }
  }

  if (std::string error; !open_replay(*config_, &error)) {
    SBUS_LOG(kError) << "state_dir: " << error << "; not started";
    return 1;
  }
  journal_ = CrashJournal::create();
  if (journal_ == nullptr) SBUS_LOG(kWarn) << "no crash journal (mmap failed): interrupted calls may run twice";
  started_ = Clock::now();
  for (std::size_t i = 0; i < config_->brokers.size(); ++i) spawn(add_worker(config_->brokers[i], i));
  SBUS_LOG(kInfo) << "sbusd " << SBUS_VERSION << " started: node " << config_->node << ", "
                  << workers_.size() << " brokers, " << config_->services.size() << " services";

  for (;;) {
    auto now = Clock::now();
    milliseconds timeout{1000};
    for (const WorkerRecord& worker : workers_) {
      if (worker.state == WorkerState::kWaitingRestart) {
        timeout = std::min(timeout, std::max(milliseconds(0), duration_cast<milliseconds>(worker.restart_at - now)));
      }
    }
    if (notifier_.watchdog_interval().count() > 0) {
      timeout = std::min(timeout, std::max(milliseconds(0), duration_cast<milliseconds>(next_watchdog_ - now)));
    }
    if (reload_check_) {
      timeout = std::min(timeout,
                         std::max(milliseconds(0), duration_cast<milliseconds>(reload_check_->deadline() - now)));
    }
    std::vector<pollfd> fds;
    fds.push_back({signal_fd_, POLLIN, 0});
    if (reload_check_ && reload_check_->fd() >= 0) fds.push_back({reload_check_->fd(), POLLIN, 0});
    if (log_file_) fds.push_back({log_file_->fd(), POLLIN, 0});
    for (const WorkerRecord& worker : workers_) {
      if (worker.status_fd >= 0) fds.push_back({worker.status_fd, POLLIN, 0});
    }
    ::poll(fds.data(), fds.size(), static_cast<int>(timeout.count()) + 1);

    bool stop = false;
    bool reload_wanted = false;
    bool reopen_wanted = false;
    signalfd_siginfo info{};
    while (::read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
      if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) stop = true;
      if (info.ssi_signo == SIGHUP) reload_wanted = true;
      if (info.ssi_signo == SIGUSR1) reopen_wanted = true;
    }
    // Fixed order: reap, then stop, then reload, then log reopen.
    reap();
    if (stop) begin_stop();
    if (reload_wanted && !stopping_) start_reload();
    step_reload();
    if (reopen_wanted) reopen_log();
    for (WorkerRecord& worker : workers_) read_status(worker);
    if (log_file_) log_file_->pump();

    if (stopping_) {
      update_status();
      if (!any_alive()) break;
      if (Clock::now() >= kill_at_) {
        for (WorkerRecord& worker : workers_) {
          if (worker.pid > 0) {
            SBUS_LOG(kWarn) << "worker pid " << worker.pid << " did not stop in time: SIGKILL";
            ::kill(worker.pid, SIGKILL);
          }
        }
        kill_at_ = Clock::now() + std::chrono::seconds(5);
      }
      continue;
    }
    step_replacement();
    now = Clock::now();
    for (WorkerRecord& worker : workers_) {
      if (worker.state == WorkerState::kWaitingRestart && worker.restart_at <= now) spawn(worker);
    }
    update_status();
    if (notifier_.watchdog_interval().count() > 0 && now >= next_watchdog_) {
      notifier_.watchdog();
      next_watchdog_ = now + duration_cast<milliseconds>(notifier_.watchdog_interval());
    }
  }
  for (WorkerRecord& worker : workers_) close_status(worker);
  ::close(signal_fd_);
  SBUS_LOG(kInfo) << "sbusd stopped";
  if (log_file_) log_file_->pump();
  return 0;
}

}  // namespace

std::vector<std::string> check_plugins_isolated(const Config& config, std::chrono::milliseconds timeout,
                                                bool run_start) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {std::string("pipe failed: ") + std::strerror(errno)};
  std::string error;
  WorkerStart start;
  start.entry = WorkerStart::Entry::kCheck;
  start.run_start = run_start;
  start.config = &config;
  start.out_fd = fds[1];
  start.close_fd = fds[0];
  const pid_t pid = fork_worker(start, &error);
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return {error};
  }
  ::close(fds[1]);
  // A plugin that hangs while loading must not hang the caller.
  const auto deadline = Clock::now() + timeout;
  std::string text;
  bool timed_out = false;
  for (;;) {
    const auto left = duration_cast<milliseconds>(deadline - Clock::now()).count();
    pollfd fd{fds[0], POLLIN, 0};
    if (left <= 0 || ::poll(&fd, 1, static_cast<int>(left)) == 0) {
      timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    char buffer[4096];
    ssize_t n = ::read(fds[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::vector<std::string> problems;
  if (timed_out) {
    problems.push_back("plugin check did not finish within " + std::to_string(timeout.count()) +
                       " ms (a plugin hangs while loading)");
    return problems;
  }
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) problems.push_back(line);
  if (problems.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    problems.push_back("plugin check " + describe_status(status) + " (a plugin crashed while loading)");
  }
  return problems;
}

int run_supervisor(const std::string& path, const ConfigOverrides& overrides, Config config,
                   std::chrono::milliseconds check_timeout) {
  Supervisor supervisor(path, overrides, std::move(config), check_timeout);
  return supervisor.run();
}

}  // namespace sbus
