#include "supervisor/metrics_process.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace sbus {

std::string metrics_module_path() {
  std::error_code ignored;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ignored);
  return (self.parent_path().parent_path() / "libexec" / "sbus" / "sbus-metrics.so").string();
}

MetricsProcess::~MetricsProcess() {
  if (fd_ >= 0) ::close(fd_);
}

bool MetricsProcess::start(std::string* error) {
  const std::string path = metrics_module_path();
  // A socket pair, not a pipe: send() with MSG_NOSIGNAL, so that a server
  // that died unreaped costs the supervisor an EPIPE, not a SIGPIPE.
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    *error = std::string("socketpair failed: ") + std::strerror(errno);
    return false;
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    *error = std::string("fork failed: ") + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return false;
  }
  if (pid == 0) {
    // The supervisor's signals are blocked (it reads them from a
    // signalfd): this process ends on SIGTERM, as by default.
    for (int signal : {SIGTERM, SIGINT, SIGHUP}) ::signal(signal, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) _exit(0);
    ::close(fds[1]);
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    void* entry = handle != nullptr ? dlsym(handle, "sbus_metrics_serve") : nullptr;
    if (entry == nullptr) {
      const char* reason = dlerror();
      dprintf(STDERR_FILENO, "sbusd: metrics_listen %s: cannot load the metrics module %s: %s\n", listen_.c_str(),
              path.c_str(), reason != nullptr ? reason : "entry point missing");
      _exit(kMetricsExitNoModule);
    }
    _exit(
        reinterpret_cast<decltype(&sbus_metrics_serve)>(entry)(listen_.c_str(), fds[0], static_cast<int>(log_level_)));
  }
  ::close(fds[0]);
  ::shutdown(fds[1], SHUT_RD);
  if (fd_ >= 0) ::close(fd_);
  fd_ = fds[1];
  pid_ = pid;
  pending_.clear();
  next_.clear();
  return true;
}

void MetricsProcess::exited() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  pid_ = -1;
}

void MetricsProcess::publish(const MetricsSnapshot& snapshot) {
  if (fd_ < 0) return;
  next_ = encode_snapshot(snapshot);
  flush();
}

void MetricsProcess::flush() {
  while (fd_ >= 0) {
    if (pending_.empty()) {
      if (next_.empty()) return;
      pending_.swap(next_);
    }
    const ssize_t n = ::send(fd_, pending_.data(), pending_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      pending_.erase(0, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return;  // full (EAGAIN), or gone (EPIPE) and soon reaped: tried again next turn
    }
  }
}

void MetricsProcess::stop() {
  if (pid_ > 0) ::kill(pid_, SIGTERM);
}

}  // namespace sbus
