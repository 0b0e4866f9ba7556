// The metrics server process (base/metrics_entry.hpp) as the supervisor
// sees it: started with fork, fed snapshots through a non-blocking socket,
// started again when it ends. Single-threaded: the supervisor's loop only.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/log.hpp"
#include "base/metrics_entry.hpp"

namespace sbus {

class MetricsProcess {
 public:
  MetricsProcess(std::string listen, LogLevel log_level) : listen_(std::move(listen)), log_level_(log_level) {}
  ~MetricsProcess();
  MetricsProcess(const MetricsProcess&) = delete;
  MetricsProcess& operator=(const MetricsProcess&) = delete;

  // Forks the process, which loads sbus-metrics.so (beside the worker
  // module) and serves `listen`. False with the reason in `error`.
  bool start(std::string* error);
  pid_t pid() const { return pid_; }
  const std::string& listen() const { return listen_; }

  // Its process ended (reaped by the supervisor): nothing is sent until the
  // next start().
  void exited();

  // Hands `snapshot` over without blocking. While the socket is full, the
  // newest snapshot waits and an older one still waiting is dropped.
  void publish(const MetricsSnapshot& snapshot);
  // Writes what waits; called each turn.
  void flush();

  // SIGTERM, at the supervisor's stop; the supervisor reaps it.
  void stop();

 private:
  std::string listen_;
  LogLevel log_level_;
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string pending_;  // the rest of a snapshot partly written
  std::string next_;     // a whole snapshot waiting behind it
};

// ../libexec/sbus/sbus-metrics.so from the folder of the running executable.
std::string metrics_module_path();

}  // namespace sbus
