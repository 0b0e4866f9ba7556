// The daemon's log file, for running without journald: every process's
// lines reach the supervisor through one pipe, and the supervisor alone
// writes the file and rotates it when it passes `max_bytes` (FILE.1 ...
// FILE.KEEP, the oldest dropped).
#pragma once

#include <cstddef>
#include <string>

namespace sbus {

class LogFile {
 public:
  LogFile(std::string path, std::size_t max_bytes, int keep);
  ~LogFile();
  LogFile(const LogFile&) = delete;
  LogFile& operator=(const LogFile&) = delete;

  // Opens (appending) the file and points `redirect_fd` (the supervisor's
  // stderr, and so that of every worker forked later) at a pipe whose read
  // end is fd(). Returns false with `error` set when the file cannot be
  // opened.
  bool start(int redirect_fd, std::string* error);

  // The pipe's read end, for the supervisor's poll loop.
  int fd() const { return pipe_read_; }

  // Moves what is in the pipe to the file; rotates as needed.
  void pump();

  // Opens the file at `path` anew (SIGUSR1, after an outside logrotate moved
  // it away); the old file stays in use when that fails, with `error` set.
  bool reopen(std::string* error);

 private:
  void rotate();

  std::string path_;
  std::size_t max_bytes_;
  int keep_;
  int file_ = -1;
  int pipe_read_ = -1;
  std::size_t size_ = 0;
};

}  // namespace sbus
