#include "supervisor/config_check.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "supervisor/process_launcher.hpp"
#include "supervisor/worker_process.hpp"

namespace sbus {

void run_config_check(const std::string& path, const ConfigOverrides& overrides, std::chrono::milliseconds timeout,
                      bool run_start, int out_fd) {
  Config config;
  std::vector<std::string> problems;
  load_config(path, overrides, &config, &problems);
  // Every problem at once: the plugins of the services the config names
  // are loaded also when it has other problems.
  if (!config.services.empty()) {
    std::vector<std::string> plugin_problems = check_plugins_isolated(config, timeout, run_start);
    problems.insert(problems.end(), plugin_problems.begin(), plugin_problems.end());
  }
  std::string text;
  for (const std::string& problem : problems) text += problem + "\n";
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(out_fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += static_cast<std::size_t>(n);
  }
  _exit(problems.empty() ? 0 : 1);
}

ConfigCheck::ConfigCheck(LaunchedChild child, std::chrono::milliseconds timeout, TimePoint now)
    : pid_(child.pid), fd_(child.fd), deadline_(now + timeout), timeout_(timeout) {}

ConfigCheck::~ConfigCheck() {
  if (fd_ >= 0) ::close(fd_);
}

void ConfigCheck::read() {
  while (fd_ >= 0) {
    char buffer[4096];
    const ssize_t n = ::read(fd_, buffer, sizeof(buffer));
    if (n > 0) {
      text_.append(buffer, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    ::close(fd_);
    fd_ = -1;
  }
}

void ConfigCheck::exited(int status) {
  reaped_ = true;
  status_ = status;
  read();
  // Nothing more can come once the child (and any child of its that held
  // the pipe: none does, it is close-on-exec and they exec nothing) is gone.
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void ConfigCheck::kill(WorkerLauncher& launcher) {
  if (!reaped_ && pid_ > 0) launcher.signal(pid_, SIGKILL);
  killed_ = true;
}

std::vector<std::string> ConfigCheck::problems() const {
  std::vector<std::string> problems;
  if (killed_) {
    problems.push_back("config check did not finish within " + std::to_string(timeout_.count()) +
                       " ms (a secret file that blocks when read, such as a FIFO, or a plugin that hangs while "
                       "loading); abandoned");
    return problems;
  }
  std::istringstream lines(text_);
  for (std::string line; std::getline(lines, line);) problems.push_back(line);
  if (problems.empty() && !(WIFEXITED(status_) && WEXITSTATUS(status_) == 0)) {
    problems.push_back(WIFSIGNALED(status_)
                           ? "config check killed by signal " + std::to_string(WTERMSIG(status_))
                           : "config check failed with exit code " + std::to_string(WEXITSTATUS(status_)));
  }
  return problems;
}

std::vector<std::string> check_config_isolated(const std::string& path, const ConfigOverrides& overrides,
                                               std::chrono::milliseconds timeout, bool run_start) {
  ProcessLauncher launcher;
  std::string error;
  const LaunchedChild child = launcher.start_check(path, overrides, timeout, run_start, &error);
  if (child.pid < 0) return {error};
  ConfigCheck check(child, timeout, std::chrono::steady_clock::now());
  while (check.fd() >= 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(check.deadline() - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      check.kill(launcher);
      break;
    }
    pollfd fd{check.fd(), POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(left.count()) + 1) < 0 && errno != EINTR) break;
    check.read();
  }
  // This child only: the caller may have others.
  int status = 0;
  while (::waitpid(check.pid(), &status, 0) < 0 && errno == EINTR) {
  }
  check.exited(status);
  return check.problems();
}

}  // namespace sbus
