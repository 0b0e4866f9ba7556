#include "worker/status_pipe.hpp"

#include <unistd.h>

#include <cerrno>

namespace sbus {

void StatusPipe::send(std::string_view record) {
  if (fd_ < 0) return;
  pending_ += record;
  flush();
}

bool StatusPipe::flush() {
  while (!pending_.empty()) {
    const ssize_t n = ::write(fd_, pending_.data(), pending_.size());
    if (n > 0) {
      pending_.erase(0, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      // Full (EAGAIN), or the supervisor is gone (EPIPE; the worker ends on
      // its parent's death): try again on the next write.
      return false;
    }
  }
  return true;
}

}  // namespace sbus
