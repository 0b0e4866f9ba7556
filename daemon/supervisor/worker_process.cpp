#include "supervisor/worker_process.hpp"

#include <dlfcn.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace sbus {

std::string worker_module_path() {
  std::error_code ignored;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ignored);
  return (self.parent_path().parent_path() / "libexec" / "sbus" / "sbusd-worker.so").string();
}

pid_t fork_worker(const std::function<int(const WorkerModule&)>& job, std::string* error) {
  const std::string path = worker_module_path();
  if (::access(path.c_str(), R_OK) != 0) {
    *error = "cannot load the worker module " + path + ": " + std::strerror(errno);
    return -1;
  }
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
  // Local: the module's copies of the config and log code stay its own.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  WorkerModule module;
  if (handle != nullptr) {
    module.serve = reinterpret_cast<decltype(module.serve)>(dlsym(handle, "sbus_worker_serve"));
    module.check = reinterpret_cast<decltype(module.check)>(dlsym(handle, "sbus_worker_check"));
  }
  if (module.serve == nullptr || module.check == nullptr) {
    const char* reason = dlerror();
    std::fprintf(stderr, "sbusd: cannot load the worker module %s: %s\n", path.c_str(),
                 reason != nullptr ? reason : "entry points missing");
    _exit(kWorkerExitFatal);
  }
  _exit(job(module));
}

}  // namespace sbus
