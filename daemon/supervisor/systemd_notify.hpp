// Tells systemd (Type=notify) what the supervisor is doing, with the
// sd_notify datagram protocol. Without NOTIFY_SOCKET every call does
// nothing.
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace sbus {

class SystemdNotifier {
 public:
  // What sd_notify would send, one state at a time ("READY=1").
  using Sink = std::function<void(const std::string& state)>;

  // From NOTIFY_SOCKET and WATCHDOG_USEC.
  SystemdNotifier();
  // Hands each state to `sink` instead of a socket, with the given watchdog
  // interval: for tests.
  SystemdNotifier(Sink sink, std::chrono::microseconds watchdog_interval);

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
  Sink sink_;
  std::chrono::microseconds watchdog_interval_{0};
  std::string last_status_;
};

}  // namespace sbus
