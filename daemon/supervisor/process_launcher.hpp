// The real WorkerLauncher: fork (worker_process.hpp), kill and waitpid.
#pragma once

#include "supervisor/worker_launcher.hpp"

namespace sbus {

class ProcessLauncher final : public WorkerLauncher {
 public:
  LaunchedChild start_worker(const ServeStart& start, std::string* error) override;
  LaunchedChild start_check(const std::string& path, const ConfigOverrides& overrides,
                            std::chrono::milliseconds timeout, bool run_start, std::string* error) override;
  void signal(pid_t pid, int signal) override;
  // waitpid(-1, WNOHANG): any child of the process, as the loop reaps them all.
  std::optional<ChildExit> reap() override;
};

}  // namespace sbus
