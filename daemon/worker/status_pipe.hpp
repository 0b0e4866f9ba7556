// The worker's end of its status pipe to the supervisor (records of
// base/worker_entry.hpp). The pipe is non-blocking: a supervisor that does
// not read must not stall serving. A record the pipe cannot take whole
// waits here and goes first on the next write, so records are never cut.
// The connection thread's only.
#pragma once

#include <string>
#include <string_view>

namespace sbus {

class StatusPipe {
 public:
  explicit StatusPipe(int fd) : fd_(fd) {}

  // Queues `record` and writes what the pipe takes.
  void send(std::string_view record);
  // Writes what is still queued; true when nothing is left.
  bool flush();
  // Nothing waits: a metrics report is worth sending (one that would only
  // queue behind an older one is left out: the next one says more).
  bool idle() const { return fd_ >= 0 && pending_.empty(); }

 private:
  int fd_;
  std::string pending_;
};

}  // namespace sbus
