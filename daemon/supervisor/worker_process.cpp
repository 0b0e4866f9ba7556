#include "supervisor/worker_process.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

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
  const bool serve = start.entry == WorkerStart::Entry::kServe;
  const char* symbol = serve ? "sbus_worker_serve" : "sbus_worker_check";
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
    dprintf(serve ? STDERR_FILENO : start.out_fd, "%scannot load the worker module %s: %s\n",
            serve ? "sbusd: " : "", path.c_str(), reason != nullptr ? reason : "entry point missing");
    _exit(kWorkerExitFatal);
  }
  if (serve) {
    _exit(reinterpret_cast<decltype(&sbus_worker_serve)>(entry)(start.config, start.broker_index, start.out_fd,
                                                                 start.journal, start.replay, start.history));
  }
  _exit(reinterpret_cast<decltype(&sbus_worker_check)>(entry)(start.config, start.out_fd, start.run_start ? 1 : 0));
}

}  // namespace sbus
