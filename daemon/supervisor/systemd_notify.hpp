// Tells systemd (Type=notify) what the supervisor is doing, with the
// sd_notify datagram protocol. Without NOTIFY_SOCKET every call does
// nothing.
#pragma once

#include <chrono>
#include <string>

namespace sbus {

class SystemdNotifier {
 public:
  SystemdNotifier();

  void ready();
  void reloading();
  void stopping();
  void status(const std::string& line);
  // WATCHDOG=1; call it only from a healthy loop turn.
  void watchdog();

  // How often watchdog() is due (half of WatchdogSec=), or zero when systemd
  // set no watchdog.
  std::chrono::microseconds watchdog_interval() const { return watchdog_interval_; }

 private:
  void send(const std::string& state);

  std::string socket_path_;  // from NOTIFY_SOCKET; empty: not under systemd
  std::chrono::microseconds watchdog_interval_{0};
  std::string last_status_;
};

}  // namespace sbus
