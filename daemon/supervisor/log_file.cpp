#include "supervisor/log_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace sbus {

LogFile::LogFile(std::string path, std::size_t max_bytes, int keep)
    : path_(std::move(path)), max_bytes_(max_bytes), keep_(keep) {}

LogFile::~LogFile() {
  if (pipe_read_ >= 0) {
    pump();
    ::close(pipe_read_);
  }
  if (file_ >= 0) ::close(file_);
}

bool LogFile::start(int redirect_fd, std::string* error) {
  file_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (file_ < 0) {
    *error = "cannot open log file " + path_ + ": " + std::strerror(errno);
    return false;
  }
  struct stat info {};
  if (::fstat(file_, &info) == 0) size_ = static_cast<std::size_t>(info.st_size);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    *error = std::string("pipe failed: ") + std::strerror(errno);
    return false;
  }
  pipe_read_ = fds[0];
  ::fcntl(pipe_read_, F_SETFL, O_NONBLOCK);
  // dup2 clears O_CLOEXEC: workers inherit it as their stderr.
  ::dup2(fds[1], redirect_fd);
  ::close(fds[1]);
  return true;
}

void LogFile::pump() {
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(pipe_read_, buffer, sizeof(buffer));
    if (n <= 0) return;
    // Rotate only between lines so that no line is split across files.
    std::size_t start = 0;
    const std::size_t length = static_cast<std::size_t>(n);
    while (start < length) {
      const char* newline = static_cast<const char*>(std::memchr(buffer + start, '\n', length - start));
      std::size_t end = newline ? static_cast<std::size_t>(newline - buffer) + 1 : length;
      [[maybe_unused]] ssize_t w = ::write(file_, buffer + start, end - start);
      size_ += end - start;
      start = end;
      if (newline && size_ >= max_bytes_) rotate();
    }
  }
}

bool LogFile::reopen(std::string* error) {
  const int file = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (file < 0) {
    *error = "cannot reopen log file " + path_ + ": " + std::strerror(errno);
    return false;
  }
  ::close(file_);
  file_ = file;
  struct stat info {};
  size_ = ::fstat(file_, &info) == 0 ? static_cast<std::size_t>(info.st_size) : 0;
  return true;
}

void LogFile::rotate() {
  if (keep_ <= 0) {
    [[maybe_unused]] int r = ::ftruncate(file_, 0);
    size_ = 0;
    return;
  }
  for (int i = keep_ - 1; i >= 1; --i) {
    std::rename((path_ + "." + std::to_string(i)).c_str(), (path_ + "." + std::to_string(i + 1)).c_str());
  }
  std::rename(path_.c_str(), (path_ + ".1").c_str());
  int file = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (file >= 0) {
    ::close(file_);
    file_ = file;
    size_ = 0;
  }
}

}  // namespace sbus
