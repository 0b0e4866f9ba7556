#include "supervisor/worker_process.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "base/log.hpp"
#include "base/worker_entry.hpp"

namespace sbus {

std::string worker_module_path() {
  std::error_code ignored;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ignored);
  return (self.parent_path().parent_path() / "libexec" / "sbus" / "sbusd-worker.so").string();
}

pid_t fork_worker(const WorkerStart& start, std::string* error) {
  const std::string path = worker_module_path();
  if (::access(path.c_str(), R_OK) != 0) {
    *error = "cannot load the worker module " + path + ": " + std::strerror(errno);
    return -1;
  }
  const bool isolated = start.entry == WorkerStart::Entry::kIsolated;
  const bool serve = start.entry == WorkerStart::Entry::kServe || isolated;
  const char* symbol = isolated ? "sbus_isolated_serve" : serve ? "sbus_worker_serve" : "sbus_worker_check";
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    *error = std::string("fork failed: ") + std::strerror(errno);
    return -1;
  }
  if (pid > 0) return pid;

  // A worker must not outlive its supervisor.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(kWorkerExitOk);
  if (start.close_fd >= 0) ::close(start.close_fd);
  // Non-blocking: a supervisor that is not reading must not stall serving.
  if (serve) ::fcntl(start.out_fd, F_SETFL, O_NONBLOCK);
  // Local: the module's copies of the config and log code stay its own.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  void* entry = handle != nullptr ? dlsym(handle, symbol) : nullptr;
  if (entry == nullptr) {
    // On stderr for a worker; a check reports it with the problems it finds.
    const char* reason = dlerror();
    dprintf(serve ? STDERR_FILENO : start.out_fd, "%scannot load the worker module %s: %s\n", serve ? "sbusd: " : "",
            path.c_str(), reason != nullptr ? reason : "entry point missing");
    _exit(kWorkerExitFatal);
  }
  if (serve) {
    // The worker's (and an isolated process's) journal entries go through
    // the supervisor's relay.
    void* use_relay = journal_relay_fd() >= 0 ? dlsym(handle, "sbus_worker_use_journal_relay") : nullptr;
    if (use_relay != nullptr) reinterpret_cast<decltype(&sbus_worker_use_journal_relay)>(use_relay)(journal_relay_fd());
  }
  if (isolated) {
    _exit(reinterpret_cast<decltype(&sbus_isolated_serve)>(entry)(start.config, start.broker_index, start.service_index,
                                                                  start.out_fd, start.journal));
  }
  if (serve) {
    _exit(reinterpret_cast<decltype(&sbus_worker_serve)>(entry)(start.config, start.broker_index, start.out_fd,
                                                                start.journal, start.replay, start.history));
  }
  _exit(reinterpret_cast<decltype(&sbus_worker_check)>(entry)(start.config, start.out_fd, start.run_start ? 1 : 0));
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) +
           ")";
  }
  return "ended";
}

std::vector<std::string> check_plugins_isolated(const Config& config, std::chrono::milliseconds timeout,
                                                bool run_start) {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
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
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string text;
  bool timed_out = false;
  for (;;) {
    const auto left = duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now()).count();
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
    problems.push_back("plugin check " + describe_exit(status) + " (a plugin crashed while loading)");
  }
  return problems;
}

}  // namespace sbus
