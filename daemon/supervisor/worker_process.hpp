// Starting worker processes: a fork of the supervisor that loads the worker
// module (base/worker_entry.hpp) and runs one of its entry points.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "base/crash_journal.hpp"
#include "base/replay_cache.hpp"
#include "config/config.hpp"

namespace sbus {

struct WorkerHistory;  // base/worker_entry.hpp

// What a worker runs, all set up before the fork: the child runs no more of
// sbusd's own code than fork_worker() itself.
struct WorkerStart {
  enum class Entry { kServe, kCheck };
  Entry entry = Entry::kServe;
  const Config* config = nullptr;
  std::size_t broker_index = 0;  // kServe: the broker it serves
  int out_fd = -1;               // kServe: the status pipe; kCheck: where problems go
  int close_fd = -1;             // the parent's end of that pipe: closed in the child
  CrashJournal* journal = nullptr;
  ReplayCache* replay = nullptr;
  bool run_start = false;
  const WorkerHistory* history = nullptr;  // kServe        // kCheck: create each service and run its start() and stop()
};

// Forks a child that loads sbusd-worker.so, calls the entry point and exits
// with what it returns. The child ends with SIGTERM when the supervisor
// dies, and with kWorkerExitFatal (saying why on stderr) when the module
// does not load. Returns the child's pid, or -1 with the reason in `error`.
pid_t fork_worker(const WorkerStart& start, std::string* error);

// The worker module: ../libexec/sbus/sbusd-worker.so from the folder of the
// running executable, the same in the build tree as once installed.
std::string worker_module_path();

}  // namespace sbus
