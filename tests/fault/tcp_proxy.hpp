// A loopback TCP proxy for the fault tests: it stands between sbusd and a
// broker so that a test can cut the link without the peers being told.
//
// The proxy listens on 127.0.0.1 on a free port and forwards every accepted
// connection to 127.0.0.1:target_port, both ways, on one thread of its own
// (poll). Half-closes and errors are passed on while it forwards.
//
// blackhole(true) makes the link silently dead: from then on the proxy
// reads nothing, writes nothing and accepts nothing, in both directions.
// Bytes wait in the kernel's socket buffers, no FIN and no RST reaches either
// side, and new connections complete their TCP handshake (the kernel's
// backlog) but get no byte: every connection looks open and idle, as behind
// a dead router. blackhole(false) resumes, and what was held flows on.
//
// All methods may be called from any thread. The destructor stops the thread
// and closes every socket (the peers then see their connections close).
#pragma once

#include <atomic>
#include <cstddef>
#include <string>
#include <thread>

namespace sbus_test {

class TcpProxy {
 public:
  // Starts listening and forwarding; throws std::runtime_error when it
  // cannot.
  explicit TcpProxy(int target_port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  // amqp://guest:guest@127.0.0.1:PORT/%2f, for the proxy's port.
  std::string uri() const;

  void blackhole(bool on);
  bool blackholed() const { return blackhole_.load(); }

  // Connections accepted so far, and those still being forwarded.
  std::size_t accepted() const { return accepted_.load(); }
  std::size_t open_connections() const { return open_.load(); }

 private:
  void run();
  void wake();

  int target_port_;
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: a state change or the stop
  std::atomic<bool> blackhole_{false};
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> accepted_{0};
  std::atomic<std::size_t> open_{0};
  std::thread thread_;
};

}  // namespace sbus_test
