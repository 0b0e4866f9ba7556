#include "supervisor/supervisor.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <utility>

#include "base/crash_journal.hpp"
#include "base/listen_address.hpp"
#include "base/log.hpp"
#include "base/replay_cache.hpp"
#include "base/worker_entry.hpp"
#include "supervisor/metrics_render.hpp"
#include "supervisor/process_launcher.hpp"
#include "supervisor/worker_process.hpp"

namespace sbus {

namespace {
// How long start waits for the workers of a killed sbusd to let go of the
// crash journal (they die of PDEATHSIG) before it keeps one in memory.
constexpr int kJournalLockWaitMs = 2000;
}  // namespace

using std::chrono::duration_cast;
using std::chrono::milliseconds;

Supervisor::Supervisor(SupervisorSettings settings, Config config, WorkerLauncher& launcher, Clock& clock,
                       SystemdNotifier& notifier)
    : settings_(std::move(settings)),
      launcher_(launcher),
      clock_(clock),
      notifier_(notifier),
      config_(std::make_shared<const Config>(std::move(config))),
      stamps_(stamp_plugins(*config_)),
      isolated_(launcher, clock) {}

Supervisor::~Supervisor() {
  for (WorkerRecord& worker : workers_) close_status(worker);
}

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

void Supervisor::erase(const WorkerRecord& worker) {
  workers_.erase(std::find_if(workers_.begin(), workers_.end(), [&](const WorkerRecord& w) { return &w == &worker; }));
}

// The log's format and fields, once stderr points where it stays (with a
// log_file, its pipe: then `auto` means text). Called again at each reload.
void set_log_output(const Config& config) {
  std::string why;
  // Through a relay process: mapped here, libsystemd and the compression
  // libraries it needs would take the supervisor 1.4 MB past its 5 MB.
  log_set_output(config.log_format, LogContext{config.node, "", 0}, &why, JournalVia::kRelay);
  if (!why.empty()) SBUS_LOG(kWarn) << "log_format " << log_format_name(config.log_format) << ": " << why;
}

bool Supervisor::start() {
  // A log file set in the YAML is fixed for the life of the process.
  if (!config_->log_file.empty()) {
    log_file_ = std::make_unique<LogFile>(config_->log_file, config_->log_max_bytes, config_->log_keep);
    std::string error;
    if (!log_file_->start(STDERR_FILENO, &error)) {
      SBUS_LOG(kError) << error;
      return false;
    }
  }
  set_log_output(*config_);
  if (std::string error; !open_replay(*config_, &error)) {
    SBUS_LOG(kError) << "state_dir: " << error << "; not started";
    return false;
  }
  open_journal();
  started_ = clock_.now();
  for (std::size_t i = 0; i < config_->brokers.size(); ++i) spawn(add_worker(config_->brokers[i], i));
  isolated_.start(config_, journal_);
  if (!config_->metrics_listen.empty()) {
    // Read at start only: a reload keeps the address and the process.
    metrics_ = std::make_unique<MetricsProcess>(config_->metrics_listen, config_->log_level);
    start_metrics();
  }
  SBUS_LOG(kInfo) << "sbusd " << SBUS_VERSION << " started: node " << config_->node << ", " << workers_.size()
                  << " brokers, " << config_->services.size() << " services";
  return true;
}

bool Supervisor::turn(const Signals& signals) {
  // Fixed order: reap, then stop, then reload, then log reopen.
  reap();
  if (signals.stop) begin_stop();
  if (signals.reload && !stopping_) start_reload();
  step_reload();
  if (signals.reopen_log) reopen_log();
  for (WorkerRecord& worker : workers_) read_status(worker);
  isolated_.read_status();
  if (log_file_) log_file_->pump();

  if (stopping_) {
    update_status();
    publish_metrics(clock_.now());
    if (!any_alive()) return false;
    step_stop();
    return true;
  }
  step_replacement();
  const Clock::TimePoint now = clock_.now();
  spawn_due(now);
  isolated_.step(now);
  update_status();
  publish_metrics(now);
  if (notifier_.watchdog_interval().count() > 0 && now >= next_watchdog_) {
    notifier_.watchdog();
    next_watchdog_ = now + duration_cast<milliseconds>(notifier_.watchdog_interval());
  }
  return true;
}

void Supervisor::finish() {
  for (WorkerRecord& worker : workers_) close_status(worker);
  if (metrics_ && metrics_->pid() > 0) {
    const pid_t pid = metrics_->pid();
    metrics_->stop();
    // It ends on SIGTERM at once (its default action); reaped here, the
    // loop being over.
    ::waitpid(pid, nullptr, 0);
    metrics_->exited();
    // Its socket file, which a process ended by a signal leaves behind.
    if (const std::string path = unix_socket_path(metrics_->listen()); !path.empty()) ::unlink(path.c_str());
  }
  SBUS_LOG(kInfo) << "sbusd stopped";
  if (log_file_) log_file_->pump();
}

std::vector<int> Supervisor::wait_fds() const {
  std::vector<int> fds;
  if (reload_check_ && reload_check_->fd() >= 0) fds.push_back(reload_check_->fd());
  if (log_file_) fds.push_back(log_file_->fd());
  for (const WorkerRecord& worker : workers_) {
    if (worker.status_fd >= 0) fds.push_back(worker.status_fd);
  }
  isolated_.add_fds(&fds);
  return fds;
}

milliseconds Supervisor::wait_timeout() const {
  const Clock::TimePoint now = clock_.now();
  const auto until = [&](Clock::TimePoint at) {
    return std::max(milliseconds(0), duration_cast<milliseconds>(at - now));
  };
  milliseconds timeout = isolated_.timeout(now);
  for (const WorkerRecord& worker : workers_) {
    if (worker.state == WorkerState::kWaitingRestart) timeout = std::min(timeout, until(worker.restart_at));
  }
  if (notifier_.watchdog_interval().count() > 0) timeout = std::min(timeout, until(next_watchdog_));
  if (reload_check_) timeout = std::min(timeout, until(reload_check_->deadline()));
  if (metrics_) {
    timeout = std::min(timeout, until(metrics_->pid() > 0 ? next_publish_ : metrics_restart_at_));
  }
  return timeout;
}

void Supervisor::spawn(WorkerRecord& worker) {
  if (worker.spawned) ++worker.history.restarts;
  worker.spawned = true;
  std::string error;
  const LaunchedChild child = launcher_.start_worker(
      {worker.config.get(), worker.broker_index, journal_, replay_, &worker.history, std::nullopt}, &error);
  if (child.pid < 0) {
    SBUS_LOG(kError) << log_broker(worker.name()) << "cannot start a worker for " << worker.name() << ": " << error
                     << "; retrying in 1 s";
    worker.state = WorkerState::kWaitingRestart;
    worker.restart_at = clock_.now() + std::chrono::seconds(1);
    return;
  }
  close_status(worker);
  worker.unavailable.clear();
  worker.partial.clear();
  worker.in_record = false;
  worker.metrics_partial.clear();
  worker.in_metrics = false;
  worker.status_fd = child.fd;
  worker.pid = child.pid;
  worker.state = WorkerState::kRunning;
  worker.connected = false;
  worker.started_at = clock_.now();
  SBUS_LOG(kInfo) << log_broker(worker.name()) << log_worker_pid(child.pid) << "worker for " << worker.name()
                  << " started, pid " << child.pid;
}

void Supervisor::spawn_due(Clock::TimePoint now) {
  for (WorkerRecord& worker : workers_) {
    if (worker.state == WorkerState::kWaitingRestart && worker.restart_at <= now) spawn(worker);
  }
}

void Supervisor::close_status(WorkerRecord& worker) {
  if (worker.status_fd >= 0) ::close(worker.status_fd);
  worker.status_fd = -1;
}

// The records of base/worker_entry.hpp, byte by byte: a record may come in
// several reads.
void Supervisor::read_status(WorkerRecord& worker) {
  char bytes[4096];
  ssize_t n;
  while (worker.status_fd >= 0 && (n = ::read(worker.status_fd, bytes, sizeof(bytes))) > 0) {
    status_changed_ = true;
    for (ssize_t i = 0; i < n; ++i) {
      const char byte = bytes[i];
      if (worker.in_metrics) {
        if (byte == '\n') {
          worker.metrics = std::move(worker.metrics_partial);
          worker.metrics_partial.clear();
          worker.in_metrics = false;
        } else if (worker.metrics_partial.size() < kMaxMetricsReport) {
          worker.metrics_partial += byte == kMetricsSeparator ? '\n' : byte;
        }
        continue;
      }
      if (worker.in_record) {
        if (byte != '\n') {
          if (worker.partial.size() < 4096) worker.partial += byte;
          continue;
        }
        SBUS_LOG(kError) << log_broker(worker.name()) << log_worker_pid(worker.pid) << "worker pid " << worker.pid
                         << " for " << worker.name() << ": service unavailable: " << worker.partial;
        worker.unavailable.push_back(std::move(worker.partial));
        worker.partial.clear();
        worker.in_record = false;
      } else if (byte == kStatusMetrics) {
        worker.in_metrics = true;
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
  while (const std::optional<ChildExit> exit = launcher_.reap()) {
    if (reload_check_ && exit->pid == reload_check_->pid()) {
      reload_check_->exited(exit->status);
      continue;
    }
    if (metrics_ && exit->pid == metrics_->pid()) {
      metrics_->exited();
      if (!stopping_) {
        SBUS_LOG(kError) << "metrics server for " << metrics_->listen() << " (pid " << exit->pid << ") "
                         << describe_exit(exit->status) << "; restarting in " << kMetricsRestartDelay.count() << " s";
      }
      metrics_restart_at_ = clock_.now() + kMetricsRestartDelay;
      continue;
    }
    if (isolated_.exited(exit->pid, exit->status, stopping_)) continue;
    if (WorkerRecord* worker = find(exit->pid)) worker_exited(*worker, exit->pid, exit->status);
  }
}

// A worker's process ended: drop a drained worker's record, or ask its
// restart policy when to start it again.
void Supervisor::worker_exited(WorkerRecord& worker, pid_t pid, int status) {
  read_status(worker);
  close_status(worker);
  worker.pid = -1;
  worker.connected = false;
  const Clock::TimePoint now = clock_.now();
  const bool crashed = WIFSIGNALED(status);
  int interrupted = 0;
  if (journal_ != nullptr) {
    const auto now_ns = duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
    int returned = 0;
    interrupted = journal_->worker_died(pid, crashed, now_ns, &returned);
    if (returned > 0) log_returned(worker, pid, returned);
    journal_->drop_resident_pages();  // the scan's pages: the supervisor's 5 MB
    if (interrupted > 0) {
      SBUS_LOG(kWarn) << log_broker(worker.name()) << log_worker_pid(pid) << "worker pid " << pid << " died during "
                      << interrupted << " call(s); they will be answered `interrupted` if redelivered";
    }
  }
  const auto uptime = duration_cast<milliseconds>(now - worker.started_at);
  worker.history.last_exit_unix_ms = clock_.unix_ms();
  std::snprintf(worker.history.last_exit, sizeof(worker.history.last_exit), "%s", describe_exit(status).c_str());
  if (worker.state == WorkerState::kDraining || stopping_) {
    // A signal is a crash even while stopping (or the KILL after the
    // drain deadline): never at info.
    if (crashed) {
      SBUS_LOG(kError) << log_broker(worker.name()) << log_worker_pid(pid) << "worker for " << worker.name() << " (pid "
                       << pid << ") " << describe_exit(status);
    } else {
      SBUS_LOG(kInfo) << log_broker(worker.name()) << log_worker_pid(pid) << "worker for " << worker.name() << " (pid "
                      << pid << ") " << describe_exit(status);
    }
    erase(worker);  // drained workers are done
    return;
  }
  RestartPolicy::Exit exit = RestartPolicy::Exit::kFailure;
  if (WIFEXITED(status) && WEXITSTATUS(status) == kWorkerExitFatal) exit = RestartPolicy::Exit::kFatal;
  if (crashed && interrupted > 0) exit = RestartPolicy::Exit::kCrashDuringCall;
  const RestartPolicy::Decision decision = worker.policy.on_exit(exit, uptime, now);
  if (decision.give_up) {
    worker.state = WorkerState::kFailed;
    SBUS_LOG(kError) << log_broker(worker.name()) << log_worker_pid(pid) << "worker for " << worker.name() << " (pid "
                     << pid << ") " << describe_exit(status) << ": fatal, not restarting until the next reload";
    return;
  }
  worker.state = WorkerState::kWaitingRestart;
  worker.restart_at = decision.restart_at;
  std::ostringstream what;
  what << "worker for " << worker.name() << " (pid " << pid << ") " << describe_exit(status) << " after "
       << uptime.count() << " ms; restarting in " << duration_cast<milliseconds>(decision.restart_at - now).count()
       << " ms";
  if (exit == RestartPolicy::Exit::kCrashDuringCall) what << " (the crash is pinned on the calls it was running)";
  if (crashed) {
    SBUS_LOG(kError) << log_broker(worker.name()) << log_worker_pid(pid) << what.str();
  } else {
    SBUS_LOG(kWarn) << log_broker(worker.name()) << log_worker_pid(pid) << what.str();
  }
}

void Supervisor::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  notifier_.stopping();
  SBUS_LOG(kInfo) << "stopping: draining workers";
  if (reload_check_) {
    SBUS_LOG(kInfo) << "stopping: the reload under way is abandoned";
    reload_check_->kill(launcher_);
    reload_check_.reset();
  }
  // Workers drain for up to drain_timeout; past that and a grace period, KILL.
  kill_at_ = clock_.now() + std::chrono::seconds(config_->drain_timeout_seconds) + kKillGrace;
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->pid > 0) {
      launcher_.signal(it->pid, SIGTERM);
      ++it;
    } else {
      close_status(*it);
      it = workers_.erase(it);
    }
  }
}

// Each turn while stopping: SIGTERM to the isolated services once the
// workers are gone; SIGKILL to the processes still alive past the deadline,
// and again every kKillGrace until they are gone.
void Supervisor::step_stop() {
  // Isolated services stop once no worker may pass them a call.
  if (std::none_of(workers_.begin(), workers_.end(), [](const WorkerRecord& w) { return w.pid > 0; })) {
    isolated_.signal_all(SIGTERM);
  }
  if (clock_.now() < kill_at_) return;
  for (WorkerRecord& worker : workers_) {
    if (worker.pid > 0) {
      SBUS_LOG(kWarn) << log_broker(worker.name()) << log_worker_pid(worker.pid) << "worker pid " << worker.pid
                      << " did not stop in time: SIGKILL";
      launcher_.signal(worker.pid, SIGKILL);
    }
  }
  isolated_.signal_all(SIGKILL);
  kill_at_ = clock_.now() + kKillGrace;
}

bool Supervisor::any_alive() const {
  return isolated_.any_alive() ||
         std::any_of(workers_.begin(), workers_.end(), [](const WorkerRecord& w) { return w.pid > 0; });
}

void Supervisor::log_returned(const WorkerRecord& worker, pid_t pid, int returned) {
  SBUS_LOG(kInfo) << log_broker(worker.name()) << log_worker_pid(pid) << "worker pid " << pid << " died after "
                  << returned << " handler(s) with a message id returned, before the id was recorded;"
                  << " their redeliveries are taken as handled";
}

// The crash journal, in STATE_DIR/crash-journal so that the returned marks
// a SIGKILLed sbusd left are read (CrashJournal::open_file()); in memory
// when the file cannot be used (another sbusd holds it), which only widens
// the handled-once window to what it is without the journal.
void Supervisor::open_journal() {
  const std::string file = crash_journal_file_of(*config_);
  std::string error;
  int imported = 0;
  if (::mkdir(config_->state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    error = "cannot create state_dir " + config_->state_dir + ": " + std::strerror(errno);
  } else {
    journal_ = CrashJournal::open_file(file, kJournalLockWaitMs, &error, &imported);
  }
  if (imported > 0) {
    SBUS_LOG(kInfo) << "crash journal " << file << ": " << imported
                    << " handler(s) with a message id had returned in the last sbusd before their id was recorded;"
                       " their redeliveries are taken as handled";
  }
  if (journal_ != nullptr) {
    journal_->drop_resident_pages();  // what the import read
    return;
  }
  SBUS_LOG(kWarn) << error << "; the crash journal is kept in memory: a SIGKILL of every sbusd process may run"
                  << " a message with an id again";
  journal_ = CrashJournal::create();
  if (journal_ == nullptr) SBUS_LOG(kWarn) << "no crash journal (mmap failed): interrupted calls may run twice";
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
      return w.broker == broker &&
             ((w.connected && w.state == WorkerState::kRunning) || w.state == WorkerState::kFailed);
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
  if (!ready_sent_ && (settled >= brokers || clock_.now() - started_ >= kReadyTimeout)) {
    ready_sent_ = true;
    notifier_.ready();
    SBUS_LOG(kInfo) << "ready: " << connected << "/" << brokers << " brokers connected"
                    << (unavailable.empty() ? ""
                                            : ", " + std::to_string(unavailable.size()) + " service(s) unavailable");
  }
  std::string status = std::to_string(connected) + "/" + std::to_string(brokers) + " brokers connected, " +
                       std::to_string(config_->services.size()) + " services";
  if (stopping_) status += ", stopping";
  for (std::size_t i = 0; i < unavailable.size(); ++i) status += (i == 0 ? "; unavailable: " : "; ") + unavailable[i];
  notifier_.status(status);
}

void Supervisor::start_metrics() {
  std::string error;
  if (!metrics_->start(&error)) {
    SBUS_LOG(kError) << "metrics_listen " << metrics_->listen() << ": cannot start the metrics server: " << error
                     << "; retrying in " << kMetricsRestartDelay.count() << " s";
    metrics_restart_at_ = clock_.now() + kMetricsRestartDelay;
    return;
  }
  status_changed_ = true;  // a snapshot at once
}

// A snapshot for the metrics server when a worker wrote or a second passed
// (uptime and memory move); the server answers scrapes from it.
void Supervisor::publish_metrics(Clock::TimePoint now) {
  if (!metrics_) return;
  if (metrics_->pid() < 0) {
    if (stopping_ || now < metrics_restart_at_) return;
    start_metrics();
    if (metrics_->pid() < 0) return;
  }
  if (!status_changed_ && now < next_publish_) {
    metrics_->flush();
    return;
  }
  status_changed_ = false;
  next_publish_ = now + kMetricsPublishInterval;
  metrics_->publish(render_metrics({*config_, workers_, now - started_, metrics_->pid(), stopping_}));
  // The text just rendered and the workers' reports it replaced are freed:
  // their pages back to the system, or the heap keeps the peak of every
  // scrape (about 0.2 MB of the supervisor's 5 MB, docs/performance.md).
  ::malloc_trim(0);
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

int run_supervisor(const std::string& path, const ConfigOverrides& overrides, Config config,
                   std::chrono::milliseconds check_timeout) {
  ProcessLauncher launcher;
  SystemClock clock;
  SystemdNotifier notifier;
  Supervisor supervisor({path, overrides, check_timeout}, std::move(config), launcher, clock, notifier);
  sigset_t blocked;
  sigemptyset(&blocked);
  // SIGUSR1 too: its default action would end the process. Workers inherit
  // the mask and so never act on it.
  for (int signal : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&blocked, signal);
  sigprocmask(SIG_BLOCK, &blocked, nullptr);
  const int signal_fd = signalfd(-1, &blocked, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) {
    SBUS_LOG(kError) << "signalfd failed: " << std::strerror(errno);
    return 1;
  }
  if (!supervisor.start()) return 1;
  for (;;) {
    const milliseconds timeout = supervisor.wait_timeout();
    std::vector<pollfd> fds;
    fds.push_back({signal_fd, POLLIN, 0});
    for (const int fd : supervisor.wait_fds()) fds.push_back({fd, POLLIN, 0});
    ::poll(fds.data(), fds.size(), static_cast<int>(timeout.count()) + 1);
    Supervisor::Signals signals;
    signalfd_siginfo info{};
    while (::read(signal_fd, &info, sizeof(info)) == sizeof(info)) {
      if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) signals.stop = true;
      if (info.ssi_signo == SIGHUP) signals.reload = true;
      if (info.ssi_signo == SIGUSR1) signals.reopen_log = true;
    }
    if (!supervisor.turn(signals)) break;
  }
  ::close(signal_fd);
  supervisor.finish();
  return 0;
}

}  // namespace sbus
