#include "supervisor/systemd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "base/log.hpp"

namespace sbus {

// The datagram protocol of sd_notify(3), without libsystemd (six more
// shared libraries in a process that should stay small): one datagram of
// "KEY=VALUE" lines to the AF_UNIX socket named in NOTIFY_SOCKET, a path,
// or an abstract name when it starts with '@'.
SystemdNotifier::SystemdNotifier() {
  const char* socket_path = std::getenv("NOTIFY_SOCKET");
  if (socket_path != nullptr && (socket_path[0] == '/' || socket_path[0] == '@') &&
      std::strlen(socket_path) < sizeof(sockaddr_un::sun_path)) {
    socket_path_ = socket_path;
  }
  // WATCHDOG_USEC applies to this process only if WATCHDOG_PID is unset or
  // names it.
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  if (usec != nullptr && (pid == nullptr || std::strtol(pid, nullptr, 10) == getpid())) {
    const long long value = std::strtoll(usec, nullptr, 10);
    if (value > 0) watchdog_interval_ = std::chrono::microseconds(value / 2);
  }
}

SystemdNotifier::SystemdNotifier(Sink sink, std::chrono::microseconds watchdog_interval)
    : sink_(std::move(sink)), watchdog_interval_(watchdog_interval) {}

void SystemdNotifier::send(const std::string& state) {
  if (sink_) {
    sink_(state);
    return;
  }
  if (socket_path_.empty()) return;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_path_.data(), socket_path_.size());
  if (address.sun_path[0] == '@') address.sun_path[0] = '\0';
  const socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path_.size());

  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    SBUS_LOG(kDebug) << "notify socket: " << std::strerror(errno);
    return;
  }
  if (::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address), length) < 0) {
    SBUS_LOG(kDebug) << "sd_notify(" << state << ") to " << socket_path_ << " failed: " << std::strerror(errno);
  }
  ::close(fd);
}

void SystemdNotifier::ready() {
  send("READY=1");
}
void SystemdNotifier::reloading() {
  send("RELOADING=1");
}
void SystemdNotifier::stopping() {
  send("STOPPING=1");
}
void SystemdNotifier::watchdog() {
  send("WATCHDOG=1");
}

void SystemdNotifier::status(const std::string& line) {
  if (line == last_status_) return;
  last_status_ = line;
  send("STATUS=" + line);
}

}  // namespace sbus
