#include "tcp_proxy.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <list>
#include <stdexcept>
#include <vector>

namespace sbus_test {
namespace {

std::string errno_text() {
  return std::strerror(errno);
}

// One proxied connection: side 0 is the client, side 1 the target.
// pending[i] holds bytes read from side i and not yet written to the other
// side; a side is read only while its pending bytes are empty, so the
// proxy never buffers more than one read per direction.
struct Link {
  std::array<int, 2> fd{-1, -1};
  std::array<std::string, 2> pending;
  std::array<bool, 2> eof{false, false};        // side i sent FIN
  std::array<bool, 2> passed_on{false, false};  // ... and the other side was shut down for writing
  bool dead = false;

  ~Link() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
};

int connect_target(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  // Blocking on loopback: accepted or refused at once.
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

}  // namespace

TcpProxy::TcpProxy(int target_port) : target_port_(target_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) throw std::runtime_error("proxy: socket failed: " + errno_text());
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::listen(listen_fd_, 64) != 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const std::string error = errno_text();
    ::close(listen_fd_);
    throw std::runtime_error("proxy: cannot listen on 127.0.0.1: " + error);
  }
  port_ = ntohs(address.sin_port);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    const std::string error = errno_text();
    ::close(listen_fd_);
    throw std::runtime_error("proxy: eventfd failed: " + error);
  }
  thread_ = std::thread([this] { run(); });
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  wake();
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  ::close(wake_fd_);
}

std::string TcpProxy::uri() const {
  return "amqp://guest:guest@127.0.0.1:" + std::to_string(port_) + "/%2f";
}

void TcpProxy::blackhole(bool on) {
  blackhole_ = on;
  wake();
}

void TcpProxy::wake() {
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
}

void TcpProxy::run() {
  std::list<Link> links;
  std::vector<pollfd> fds;
  std::vector<std::pair<Link*, int>> owners;  // fds[k] for k >= 2: its link and side
  char buffer[65536];

  while (!stop_) {
    fds.clear();
    owners.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    if (blackhole_) {
      // A dead link: touch no socket at all until told otherwise.
      ::poll(fds.data(), 1, 1000);
      std::uint64_t drained = 0;
      [[maybe_unused]] ssize_t n = ::read(wake_fd_, &drained, sizeof(drained));
      continue;
    }
    fds.push_back({listen_fd_, POLLIN, 0});
    for (Link& link : links) {
      for (int side = 0; side < 2; ++side) {
        short events = 0;
        if (!link.eof[side] && link.pending[side].empty()) events |= POLLIN;
        if (!link.pending[1 - side].empty()) events |= POLLOUT;
        fds.push_back({link.fd[side], events, 0});
        owners.emplace_back(&link, side);
      }
    }
    if (::poll(fds.data(), fds.size(), 1000) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents & POLLIN) {
      std::uint64_t drained = 0;
      [[maybe_unused]] ssize_t n = ::read(wake_fd_, &drained, sizeof(drained));
    }
    // Turned on while we waited: what poll reported stays unread.
    if (blackhole_ || stop_) continue;

    if (fds[1].revents & POLLIN) {
      for (;;) {
        const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (client < 0) break;
        ++accepted_;
        const int target = connect_target(target_port_);
        if (target < 0) {
          ::close(client);  // the target refuses: so does the proxy
          continue;
        }
        const int one = 1;
        ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        Link& link = links.emplace_back();
        link.fd = {client, target};
        ++open_;
      }
    }

    for (std::size_t k = 2; k < fds.size(); ++k) {
      Link& link = *owners[k - 2].first;
      const int side = owners[k - 2].second;
      const short revents = fds[k].revents;
      if (link.dead || revents == 0) continue;
      if (revents & POLLOUT) {
        std::string& out = link.pending[1 - side];
        const ssize_t n = ::send(link.fd[side], out.data(), out.size(), MSG_NOSIGNAL);
        if (n > 0) {
          out.erase(0, static_cast<std::size_t>(n));
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          link.dead = true;
          continue;
        }
      }
      if ((revents & (POLLIN | POLLHUP | POLLERR)) && !link.eof[side] && link.pending[side].empty()) {
        const ssize_t n = ::recv(link.fd[side], buffer, sizeof(buffer), 0);
        if (n > 0) {
          link.pending[side].assign(buffer, static_cast<std::size_t>(n));
        } else if (n == 0) {
          link.eof[side] = true;
        } else if (errno != EAGAIN && errno != EINTR) {
          link.dead = true;
          continue;
        }
      } else if ((revents & POLLERR) != 0) {
        link.dead = true;
        continue;
      }
    }

    for (auto it = links.begin(); it != links.end();) {
      Link& link = *it;
      for (int side = 0; side < 2; ++side) {
        if (link.eof[side] && link.pending[side].empty() && !link.passed_on[side]) {
          ::shutdown(link.fd[1 - side], SHUT_WR);
          link.passed_on[side] = true;
        }
      }
      if (link.dead || (link.passed_on[0] && link.passed_on[1])) {
        it = links.erase(it);
        --open_;
      } else {
        ++it;
      }
    }
  }
  open_ = 0;
}

}  // namespace sbus_test
