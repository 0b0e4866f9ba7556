#include "supervisor/supervisor.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <sstream>
#include <vector>

#include "common/log.hpp"
#include "supervisor/restart_policy.hpp"
#include "worker/plugin_loader.hpp"
#include "worker/worker.hpp"

namespace sbus {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

enum class WorkerState { kRunning, kWaitingRestart, kStopped, kFailed };

struct WorkerRecord {
  std::size_t broker = 0;
  pid_t pid = -1;
  WorkerState state = WorkerState::kStopped;
  Clock::time_point started_at{};
  Clock::time_point restart_at{};
  RestartPolicy policy;
};

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "ended";
}

class Supervisor {
 public:
  explicit Supervisor(const Config& config) : config_(config) {}
  int run();

 private:
  void spawn(WorkerRecord& worker);
  void reap();
  void begin_stop();
  bool any_running() const;

  const Config& config_;
  std::vector<WorkerRecord> workers_;
  sigset_t signals_{};
  int signal_fd_ = -1;
  bool stopping_ = false;
  Clock::time_point kill_at_{};
};

void Supervisor::spawn(WorkerRecord& worker) {
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    SBUS_LOG(kError) << "fork failed: " << std::strerror(errno);
    worker.state = WorkerState::kWaitingRestart;
    worker.restart_at = Clock::now() + std::chrono::seconds(1);
    return;
  }
  if (pid == 0) {
    // A worker must not outlive its supervisor.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(kWorkerExitOk);
    ::close(signal_fd_);
    log_init("worker " + config_.broker_uris[worker.broker].redacted(), config_.log_level);
    _exit(run_worker(config_, worker.broker));
  }
  worker.pid = pid;
  worker.state = WorkerState::kRunning;
  worker.started_at = Clock::now();
  SBUS_LOG(kInfo) << "worker for " << config_.broker_uris[worker.broker].redacted() << " started, pid "
                  << pid;
}

void Supervisor::reap() {
  int status = 0;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    auto it = std::find_if(workers_.begin(), workers_.end(),
                           [pid](const WorkerRecord& w) { return w.pid == pid; });
    if (it == workers_.end()) continue;
    WorkerRecord& worker = *it;
    worker.pid = -1;
    const auto now = Clock::now();
    const auto uptime = duration_cast<milliseconds>(now - worker.started_at);
    const std::string broker = config_.broker_uris[worker.broker].redacted();
    if (stopping_) {
      worker.state = WorkerState::kStopped;
      SBUS_LOG(kInfo) << "worker for " << broker << " (pid " << pid << ") " << describe_status(status);
      continue;
    }
    const bool fatal = WIFEXITED(status) && WEXITSTATUS(status) == kWorkerExitFatal;
    RestartPolicy::Decision decision = worker.policy.on_exit(fatal, uptime, now);
    if (decision.give_up) {
      worker.state = WorkerState::kFailed;
      SBUS_LOG(kError) << "worker for " << broker << " (pid " << pid << ") " << describe_status(status)
                       << ": fatal, not restarting";
      continue;
    }
    worker.state = WorkerState::kWaitingRestart;
    worker.restart_at = decision.restart_at;
    SBUS_LOG(kWarn) << "worker for " << broker << " (pid " << pid << ") " << describe_status(status)
                    << " after " << uptime.count() << " ms; restarting in "
                    << duration_cast<milliseconds>(decision.restart_at - now).count() << " ms";
  }
}

void Supervisor::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  // Workers drain for up to drain_timeout; past that and a grace period, KILL.
  kill_at_ = Clock::now() + std::chrono::seconds(config_.drain_timeout_seconds + 5);
  for (WorkerRecord& worker : workers_) {
    if (worker.state == WorkerState::kRunning) {
      ::kill(worker.pid, SIGTERM);
    } else if (worker.state == WorkerState::kWaitingRestart) {
      worker.state = WorkerState::kStopped;
    }
  }
}

bool Supervisor::any_running() const {
  return std::any_of(workers_.begin(), workers_.end(),
                     [](const WorkerRecord& w) { return w.state == WorkerState::kRunning; });
}

int Supervisor::run() {
  sigemptyset(&signals_);
  for (int signal : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals_, signal);
  sigprocmask(SIG_BLOCK, &signals_, nullptr);
  signal_fd_ = signalfd(-1, &signals_, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd_ < 0) {
    SBUS_LOG(kError) << "signalfd failed: " << std::strerror(errno);
    return 1;
  }

  workers_.resize(config_.broker_uris.size());
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    workers_[i].broker = i;
    spawn(workers_[i]);
  }
  SBUS_LOG(kInfo) << "sbusd started: node " << config_.node << ", " << workers_.size()
                  << " brokers, " << config_.services.size() << " services";

  for (;;) {
    // Sleep until a signal or the next restart that is due.
    auto now = Clock::now();
    milliseconds timeout{1000};
    for (const WorkerRecord& worker : workers_) {
      if (worker.state == WorkerState::kWaitingRestart) {
        timeout = std::min(timeout, std::max(milliseconds(0),
                                             duration_cast<milliseconds>(worker.restart_at - now)));
      }
    }
    pollfd fd{signal_fd_, POLLIN, 0};
    ::poll(&fd, 1, static_cast<int>(timeout.count()) + 1);

    bool stop = false;
    bool reload = false;
    signalfd_siginfo info{};
    while (::read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
      if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) stop = true;
      if (info.ssi_signo == SIGHUP) reload = true;
    }
    // Fixed order: reap, then stop, then reload.
    reap();
    if (stop && !stopping_) {
      SBUS_LOG(kInfo) << "stopping: draining workers";
      begin_stop();
    }
    if (reload && !stopping_) {
      SBUS_LOG(kWarn) << "SIGHUP: reload is not supported yet; restart sbusd to apply a new config";
    }
    if (stopping_) {
      if (!any_running()) break;
      if (Clock::now() >= kill_at_) {
        for (WorkerRecord& worker : workers_) {
          if (worker.state == WorkerState::kRunning) {
            SBUS_LOG(kWarn) << "worker pid " << worker.pid << " did not stop in time: SIGKILL";
            ::kill(worker.pid, SIGKILL);
          }
        }
        kill_at_ = Clock::now() + std::chrono::seconds(5);
      }
      continue;
    }
    now = Clock::now();
    for (WorkerRecord& worker : workers_) {
      if (worker.state == WorkerState::kWaitingRestart && worker.restart_at <= now) spawn(worker);
    }
    if (std::all_of(workers_.begin(), workers_.end(),
                    [](const WorkerRecord& w) { return w.state == WorkerState::kFailed; })) {
      SBUS_LOG(kError) << "every worker failed fatally; exiting";
      ::close(signal_fd_);
      return 1;
    }
  }
  ::close(signal_fd_);
  SBUS_LOG(kInfo) << "sbusd stopped";
  return 0;
}

}  // namespace

std::vector<std::string> check_plugins_isolated(const Config& config) {
  int fds[2];
  if (pipe(fds) != 0) return {std::string("pipe failed: ") + std::strerror(errno)};
  const pid_t pid = fork();
  if (pid < 0) return {std::string("fork failed: ") + std::strerror(errno)};
  if (pid == 0) {
    ::close(fds[0]);
    std::vector<std::string> problems;
    check_plugins(config, &problems);
    std::string text;
    for (const std::string& problem : problems) text += problem + "\n";
    const char* p = text.data();
    std::size_t left = text.size();
    while (left > 0) {
      ssize_t n = ::write(fds[1], p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    _exit(problems.empty() ? 0 : 1);
  }
  ::close(fds[1]);
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buffer, sizeof(buffer))) > 0) text.append(buffer, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  std::vector<std::string> problems;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) problems.push_back(line);
  if (problems.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    problems.push_back("plugin check " + describe_status(status) + " (a plugin crashed while loading)");
  }
  return problems;
}

int run_supervisor(const Config& config) {
  Supervisor supervisor(config);
  return supervisor.run();
}

}  // namespace sbus
