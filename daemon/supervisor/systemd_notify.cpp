#include "supervisor/systemd_notify.hpp"

#include <systemd/sd-daemon.h>

#include "common/log.hpp"

namespace sbus {

SystemdNotifier::SystemdNotifier() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) watchdog_interval_ = std::chrono::microseconds(usec / 2);
}

void SystemdNotifier::send(const std::string& state) {
  int result = sd_notify(0, state.c_str());
  if (result < 0) SBUS_LOG(kDebug) << "sd_notify(" << state << ") failed: " << result;
}

void SystemdNotifier::ready() { send("READY=1"); }
void SystemdNotifier::reloading() { send("RELOADING=1"); }
void SystemdNotifier::stopping() { send("STOPPING=1"); }
void SystemdNotifier::watchdog() { send("WATCHDOG=1"); }

void SystemdNotifier::status(const std::string& line) {
  if (line == last_status_) return;
  last_status_ = line;
  send("STATUS=" + line);
}

}  // namespace sbus
