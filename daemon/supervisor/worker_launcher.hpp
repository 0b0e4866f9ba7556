// How the supervisor starts, signals and reaps its children, behind an
// interface: ProcessLauncher (process_launcher.hpp) forks, kills and waits
// for real processes; the unit tests' fake hands out made-up pids and pipes
// of its own, so that a test can play a worker that connects, dies at start
// or does not stop (as osquery's watcher tests do).
//
// The supervisor owns the read end of each child's pipe that a launcher
// returns and closes it. Single-threaded: called from the supervisor's loop
// only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "config/config.hpp"

namespace sbus {

class CrashJournal;
class ReplayCache;
struct WorkerHistory;

// A child just started: its pid and the read end of the pipe it writes to
// (non-blocking, close-on-exec). pid -1 when it could not start.
struct LaunchedChild {
  pid_t pid = -1;
  int fd = -1;
};

// A child that ended, with its status as waitpid() reports it.
struct ChildExit {
  pid_t pid = -1;
  int status = 0;
};

// What a serving worker is handed; everything it points to outlives the
// worker (the supervisor keeps configs, journal, cache and history).
struct ServeStart {
  const Config* config = nullptr;
  std::size_t broker_index = 0;  // it serves config->broker_uris[broker_index]
  CrashJournal* journal = nullptr;
  ReplayCache* replay = nullptr;
  const WorkerHistory* history = nullptr;
  // Set: the process of this isolated service (config->services[i]) for
  // that broker's workers (docs/isolation.md), instead of a worker.
  std::optional<std::size_t> isolated_service;
};

class WorkerLauncher {
 public:
  virtual ~WorkerLauncher() = default;

  // Starts a worker that serves `start.broker_index`. Its pipe carries the
  // status bytes of base/worker_entry.hpp (connected, disconnected, a
  // service unavailable). pid -1 with the reason in `error` when it cannot.
  virtual LaunchedChild start_worker(const ServeStart& start, std::string* error) = 0;

  // Starts a config check (config_check.hpp): a child that loads `path`
  // with `overrides`, checks every plugin in a throwaway worker of its own
  // (giving up on it after `timeout`; with `run_start`, each service's
  // start() and stop() run too), writes one line per problem to its pipe
  // and exits 0 when there is none. pid -1 with the reason in `error`.
  virtual LaunchedChild start_check(const std::string& path, const ConfigOverrides& overrides,
                                    std::chrono::milliseconds timeout, bool run_start, std::string* error) = 0;

  // Sends `signal` to a child this launcher started and has not reaped.
  virtual void signal(pid_t pid, int signal) = 0;

  // One child that has ended, or nullopt when none has since the last
  // call. Never blocks.
  virtual std::optional<ChildExit> reap() = 0;
};

}  // namespace sbus
