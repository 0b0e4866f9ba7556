#include "worker/isolated_channel.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sbus {
namespace {

void put_u32(std::string* out, std::uint32_t value) {
  out->append(reinterpret_cast<const char*>(&value), 4);
}

bool take_u32(const std::string& in, std::size_t* at, std::uint32_t* value) {
  if (in.size() - *at < 4) return false;
  std::memcpy(value, in.data() + *at, 4);
  *at += 4;
  return true;
}

sockaddr_un address_of(const std::string& name, socklen_t* length) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::size_t size = std::min(name.size(), sizeof(address.sun_path));
  std::memcpy(address.sun_path, name.data(), size);
  *length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + size);
  return address;
}

// Waits for `fd` to be readable until `deadline`; false once it passed.
bool wait_readable(int fd, std::optional<std::chrono::steady_clock::time_point> deadline) {
  for (;;) {
    int timeout = -1;
    if (deadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      timeout = static_cast<int>(std::min<std::int64_t>(left.count(), 1 << 30));
    }
    pollfd entry{fd, POLLIN, 0};
    const int ready = ::poll(&entry, 1, timeout);
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return true;  // the read says what is wrong
  }
}

// Reads exactly `size` bytes; a timeout only before the first byte.
ReadResult read_exact(int fd, char* into, std::size_t size,
                      std::optional<std::chrono::steady_clock::time_point> deadline) {
  std::size_t done = 0;
  while (done < size) {
    if (!wait_readable(fd, done == 0 ? deadline : std::nullopt)) return ReadResult::kTimedOut;
    const ssize_t n = ::recv(fd, into + done, size - done, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0 && errno == ECONNRESET && done == 0) return ReadResult::kUnread;
    if (n <= 0) return ReadResult::kClosed;
    done += static_cast<std::size_t>(n);
  }
  return ReadResult::kFrame;
}

}  // namespace

std::vector<std::string> encode(const IsolatedRequest& request) {
  return {std::string(1, static_cast<char>(request.kind)),
          request.id,
          request.category,
          request.service,
          request.topic,
          request.caller,
          request.message_id,
          std::to_string(request.deadline_unix_ms),
          request.params};
}

std::vector<std::string> encode(const IsolatedReply& reply) {
  return {std::string(1, static_cast<char>(reply.status)), reply.code, reply.body};
}

bool decode(const std::vector<std::string>& fields, IsolatedRequest* request) {
  if (fields.size() != 9 || fields[0].size() != 1) return false;
  const char kind = fields[0][0];
  if (kind != 'c' && kind != 'm' && kind != 'e') return false;
  request->kind = static_cast<IsolatedRequest::Kind>(kind);
  request->id = fields[1];
  request->category = fields[2];
  request->service = fields[3];
  request->topic = fields[4];
  request->caller = fields[5];
  request->message_id = fields[6];
  try {
    request->deadline_unix_ms = std::stoll(fields[7]);
  } catch (const std::exception&) {
    return false;
  }
  request->params = fields[8];
  return true;
}

bool decode(const std::vector<std::string>& fields, IsolatedReply* reply) {
  if (fields.size() != 3 || fields[0].size() != 1 ||
      (fields[0][0] != 'o' && fields[0][0] != 't' && fields[0][0] != 'l'))
    return false;
  reply->status = static_cast<IsolatedReply::Status>(fields[0][0]);
  reply->code = fields[1];
  reply->body = fields[2];
  return true;
}

std::string isolated_socket_name(pid_t supervisor, std::size_t broker_index, const std::string& service) {
  return std::string(1, '\0') + "sbusd-isolate/" + std::to_string(supervisor) + "/" + std::to_string(broker_index) +
         "/" + service;
}

bool same_user_peer(int fd, pid_t* peer) {
  ucred credentials{};
  socklen_t size = sizeof(credentials);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0) return false;
  if (peer != nullptr) *peer = credentials.pid;
  return credentials.uid == ::geteuid();
}

int listen_isolated(const std::string& name, std::string* error) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  socklen_t length = 0;
  const sockaddr_un address = address_of(name, &length);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), length) != 0 || ::listen(fd, 8) != 0) {
    *error = std::string("bind: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

int connect_isolated(const std::string& name, pid_t* peer, std::string* error) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  socklen_t length = 0;
  const sockaddr_un address = address_of(name, &length);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), length) != 0) {
    *error = std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (!same_user_peer(fd, peer)) {
    *error = "the process listening runs as another user";
    ::close(fd);
    return -1;
  }
  return fd;
}

bool write_frame(int fd, const std::vector<std::string>& fields) {
  std::string frame;
  std::size_t size = 0;
  for (const std::string& field : fields) size += 4 + field.size();
  frame.reserve(4 + size);
  put_u32(&frame, static_cast<std::uint32_t>(size));
  for (const std::string& field : fields) {
    put_u32(&frame, static_cast<std::uint32_t>(field.size()));
    frame += field;
  }
  std::size_t done = 0;
  while (done < frame.size()) {
    const ssize_t n = ::send(fd, frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd entry{fd, POLLOUT, 0};
      ::poll(&entry, 1, -1);
      continue;
    }
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

ReadResult read_frame(int fd, std::optional<std::chrono::steady_clock::time_point> deadline,
                      std::vector<std::string>* fields) {
  char header[4];
  const ReadResult first = read_exact(fd, header, 4, deadline);
  if (first != ReadResult::kFrame) return first;
  std::uint32_t size = 0;
  std::memcpy(&size, header, 4);
  if (size > kMaxIsolatedFrame) return ReadResult::kClosed;
  std::string body(size, '\0');
  if (size > 0 && read_exact(fd, body.data(), size, std::nullopt) != ReadResult::kFrame) return ReadResult::kClosed;
  fields->clear();
  std::size_t at = 0;
  while (at < body.size()) {
    std::uint32_t length = 0;
    if (!take_u32(body, &at, &length) || body.size() - at < length) return ReadResult::kClosed;
    fields->emplace_back(body, at, length);
    at += length;
  }
  return ReadResult::kFrame;
}

}  // namespace sbus
