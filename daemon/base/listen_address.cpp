#include "base/listen_address.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace sbus {

namespace {

int fail(int fd, std::string* error, const std::string& what) {
  *error = what + ": " + std::strerror(errno);
  if (fd >= 0) ::close(fd);
  return -1;
}

// A socket file nobody listens on any more: connect() is refused.
bool stale_socket(const std::string& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0 || !S_ISSOCK(info.st_mode)) return false;
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  const bool refused =
      ::connect(probe, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 && errno == ECONNREFUSED;
  ::close(probe);
  return refused;
}

int bind_unix(const std::string& path, std::string* error) {
  sockaddr_un address{};
  if (path.size() >= sizeof(address.sun_path)) {
    *error =
        "cannot bind " + path + ": the path is longer than " + std::to_string(sizeof(address.sun_path) - 1) + " bytes";
    return -1;
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(fd, error, "cannot open a socket for " + path);
  if (stale_socket(path)) ::unlink(path.c_str());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return fail(fd, error, "cannot bind " + path);
  }
  if (::listen(fd, 64) != 0) return fail(fd, error, "cannot listen on " + path);
  return fd;
}

int bind_inet(const std::string& address, std::string* error) {
  const std::size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size()) {
    *error = "'" + address + "' is neither HOST:PORT nor a Unix socket path";
    return -1;
  }
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    *error = "cannot bind " + address + ": " + ::gai_strerror(rc);
    return -1;
  }
  const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(found, &::freeaddrinfo);
  const int fd = ::socket(found->ai_family, found->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, found->ai_protocol);
  if (fd < 0) return fail(fd, error, "cannot open a socket for " + address);
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (::bind(fd, found->ai_addr, found->ai_addrlen) != 0) return fail(fd, error, "cannot bind " + address);
  if (::listen(fd, 64) != 0) return fail(fd, error, "cannot listen on " + address);
  return fd;
}

}  // namespace

std::string unix_socket_path(const std::string& address) {
  if (address.starts_with("unix:")) return address.substr(5);
  if (address.starts_with("/")) return address;
  return {};
}

int bind_listen(const std::string& address, std::string* error) {
  const std::string path = unix_socket_path(address);
  return path.empty() ? bind_inet(address, error) : bind_unix(path, error);
}

}  // namespace sbus
