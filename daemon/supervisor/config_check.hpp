// Checking a config file without risking the caller: load_config() and the
// plugin check (check_plugins_isolated()) run in a child process, which the
// caller gives up on at a deadline. A secret file that is a FIFO, or a
// plugin whose constructor sleeps, then costs a log line, not a frozen
// supervisor (reload) or a hanging `sbusd --check`.
//
// The supervisor starts the child with WorkerLauncher::start_check() and
// follows it with a ConfigCheck from its poll loop: it polls fd(), calls
// read() when readable, hands the child's exit status to exited() when it
// reaps pid(), and kill()s it once overdue(). Single-threaded.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "supervisor/worker_launcher.hpp"

namespace sbus {

// The default deadline of a config check (sbusd --check-timeout).
inline constexpr std::chrono::seconds kDefaultCheckTimeout{30};

class ConfigCheck {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // Follows `child`, a check started at `now` (WorkerLauncher::start_check()),
  // and takes its pipe; it is overdue `timeout` later.
  ConfigCheck(LaunchedChild child, std::chrono::milliseconds timeout, TimePoint now);
  ~ConfigCheck();
  ConfigCheck(const ConfigCheck&) = delete;
  ConfigCheck& operator=(const ConfigCheck&) = delete;

  pid_t pid() const { return pid_; }
  // The read end of the child's report; -1 once it has closed.
  int fd() const { return fd_; }
  TimePoint deadline() const { return deadline_; }
  bool overdue(TimePoint now) const { return now >= deadline_; }

  // Reads what the child has written so far (never blocks).
  void read();
  // The child was reaped with `status`.
  void exited(int status);
  // SIGKILL to the child through `launcher` unless already reaped (its own
  // plugin check child follows it); the caller still reaps it. problems()
  // then says that the check did not finish in time.
  void kill(WorkerLauncher& launcher);
  // The child has exited and its report is read.
  bool done() const { return reaped_ && fd_ < 0; }
  // After done(): the problems found, empty when the config is good.
  std::vector<std::string> problems() const;

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  TimePoint deadline_{};
  std::chrono::milliseconds timeout_{};
  bool reaped_ = false;
  bool killed_ = false;
  int status_ = 0;
  std::string text_;
};

// The body of a check child (ProcessLauncher::start_check(), after the
// fork): loads `path`, checks its plugins, writes one line per problem to
// `out_fd` and exits 0 when there is none, 1 otherwise.
[[noreturn]] void run_config_check(const std::string& path, const ConfigOverrides& overrides,
                                   std::chrono::milliseconds timeout, bool run_start, int out_fd);

// Runs a ConfigCheck to its end or its deadline, for sbusd --check and
// sbusd's start: the problems found, or the one saying that the check did
// not finish in time.
std::vector<std::string> check_config_isolated(const std::string& path, const ConfigOverrides& overrides,
                                               std::chrono::milliseconds timeout, bool run_start = false);

}  // namespace sbus
