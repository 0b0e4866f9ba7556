#include "supervisor/process_launcher.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "supervisor/config_check.hpp"
#include "supervisor/worker_process.hpp"

namespace sbus {

LaunchedChild ProcessLauncher::start_worker(const ServeStart& start, std::string* error) {
  int status_pipe[2];
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
    *error = std::string("pipe failed: ") + std::strerror(errno);
    return {};
  }
  WorkerStart worker;
  worker.config = start.config;
  worker.broker_index = start.broker_index;
  worker.out_fd = status_pipe[1];
  worker.close_fd = status_pipe[0];
  worker.journal = start.journal;
  worker.replay = start.replay;
  worker.history = start.history;
  if (start.isolated_service) {
    worker.entry = WorkerStart::Entry::kIsolated;
    worker.service_index = *start.isolated_service;
  }
  const pid_t pid = fork_worker(worker, error);
  ::close(status_pipe[1]);
  if (pid < 0) {
    ::close(status_pipe[0]);
    return {};
  }
  ::fcntl(status_pipe[0], F_SETFL, O_NONBLOCK);
  return {pid, status_pipe[0]};
}

LaunchedChild ProcessLauncher::start_check(const std::string& path, const ConfigOverrides& overrides,
                                           std::chrono::milliseconds timeout, bool run_start, std::string* error) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    *error = std::string("pipe failed: ") + std::strerror(errno);
    return {};
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    *error = std::string("fork failed: ") + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return {};
  }
  if (pid == 0) {
    // The supervisor blocks its signals to read them from a signalfd: undo
    // that, so that this child and its own plugin check child end on the
    // signals their parents send when they die (and by default: a process
    // that embeds this, such as a test runner, may handle them).
    for (int signal : {SIGTERM, SIGINT, SIGHUP}) ::signal(signal, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) _exit(1);
    ::close(fds[0]);
    run_config_check(path, overrides, timeout, run_start, fds[1]);
  }
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  return {pid, fds[0]};
}

void ProcessLauncher::signal(pid_t pid, int signal) {
  if (pid > 0) ::kill(pid, signal);
}

std::optional<ChildExit> ProcessLauncher::reap() {
  int status = 0;
  const pid_t pid = ::waitpid(-1, &status, WNOHANG);
  if (pid <= 0) return std::nullopt;
  return ChildExit{pid, status};
}

}  // namespace sbus
