// Starting worker processes: a fork of the supervisor that loads the worker
// module (base/worker_entry.hpp) and runs one of its entry points.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "base/crash_journal.hpp"
#include "base/replay_cache.hpp"
#include "config/config.hpp"

namespace sbus {

struct WorkerHistory;  // base/worker_entry.hpp

// What a worker runs, all set up before the fork: the child runs no more of
// sbusd's own code than fork_worker() itself.
struct WorkerStart {
  enum class Entry { kServe, kCheck, kIsolated };
  Entry entry = Entry::kServe;
  const Config* config = nullptr;
  std::size_t broker_index = 0;  // kServe: the broker it serves
  int out_fd = -1;               // kServe: the status pipe; kCheck: where problems go
  int close_fd = -1;             // the parent's end of that pipe: closed in the child
  CrashJournal* journal = nullptr;
  ReplayCache* replay = nullptr;
  bool run_start = false;                  // kCheck: create each service and run its start() and stop()
  const WorkerHistory* history = nullptr;  // kServe
  std::size_t service_index = 0;           // kIsolated: the isolated service it runs
};

// Forks a child that loads sbusd-worker.so, calls the entry point and exits
// with what it returns. The child ends with SIGTERM when the supervisor
// dies, and with kWorkerExitFatal (saying why on stderr) when the module
// does not load. Returns the child's pid, or -1 with the reason in `error`.
pid_t fork_worker(const WorkerStart& start, std::string* error);

// The worker module: ../libexec/sbus/sbusd-worker.so from the folder of the
// running executable, the same in the build tree as once installed.
std::string worker_module_path();

// Loads every plugin of `config` in a throwaway worker process and returns
// its problems (empty when all load, one saying so when it takes longer
// than `timeout`). With `run_start`, each service is also created and its
// start() and stop() run there, as a worker would. Runs in a config check's
// child (config_check.hpp), never in the supervisor's loop: it blocks.
std::vector<std::string> check_plugins_isolated(const Config& config, std::chrono::milliseconds timeout,
                                                bool run_start = false);

// How a child ended, from its waitpid() status: "exited with code 1",
// "killed by signal 9 (Killed)".
std::string describe_exit(int status);

}  // namespace sbus
