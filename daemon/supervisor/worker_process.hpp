// Starting worker processes: a fork of the supervisor that loads the worker
// module (worker/worker_module.hpp) and runs one of its entry points.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

#include "worker/worker_module.hpp"

namespace sbus {

// Forks a child that loads sbusd-worker.so, runs `job` with its entry
// points and exits with what `job` returns. The child ends with SIGTERM
// when the supervisor dies, and with kWorkerExitFatal (saying why on
// stderr) when the module does not load. Returns the child's pid, or -1 with
// the reason in `error`.
pid_t fork_worker(const std::function<int(const WorkerModule&)>& job, std::string* error);

// The worker module: ../libexec/sbus/sbusd-worker.so from the folder of the
// running executable, the same in the build tree as once installed.
std::string worker_module_path();

}  // namespace sbus
