// The processes the benchmark runs: the floor server, sbusd and its own
// caller processes, each started with fork + exec on the main thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace bench {

struct SpawnOptions {
  std::vector<std::string> args;  // args[0] is the program's path
  // NAME=VALUE entries added to (or replacing in) the environment.
  std::vector<std::string> env;
  // Descriptors to become 0, 1 and 2; -1 keeps ours (stdin: /dev/null).
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
};

// Starts the program. The child gets no other descriptor of ours, an empty
// signal mask, and SIGTERM when the benchmark dies (so an interrupted run
// leaves nothing behind). Throws std::runtime_error when fork fails; an
// exec failure shows as exit code 127.
pid_t spawn(const SpawnOptions& options);

// The exit status of `pid` (exit code, or 128 + signal) if it exited within
// `timeout`.
std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout);

// SIGTERM, then SIGKILL after `grace`; returns the exit status.
int stop_process(pid_t pid, std::chrono::milliseconds grace);

}  // namespace bench
