// Wakeup: how a service thread sleeps. A fire is never lost, whether it
// comes before or during the sleep; a seated thread is also woken by its
// socket, ahead of the connection thread's epoll that registered it later.
#include "worker/wakeup.hpp"

#include "base/error.hpp"

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// A connected pair of stream sockets: data written to `far` makes `near`
// readable.
struct SocketPair {
  SocketPair() { REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0); }
  ~SocketPair() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  int near() const { return fds[0]; }
  void send() const { REQUIRE(::write(fds[1], "x", 1) == 1); }
  int fds[2];
};

// The connection thread's side: its epoll, on the same socket, registered
// after the seat holder's.
struct ConnectionEpoll {
  explicit ConnectionEpoll(int fd) {
    epoll_event event{};
    event.events = EPOLLIN | EPOLLEXCLUSIVE;
    REQUIRE(epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0);
  }
  ~ConnectionEpoll() { ::close(epoll); }
  bool woken(int timeout_ms) {
    epoll_event event{};
    return epoll_wait(epoll, &event, 1, timeout_ms) == 1;
  }
  int epoll = epoll_create1(EPOLL_CLOEXEC);
};

}  // namespace

TEST_CASE("A fire before the sleep makes the sleep return at once", "[wakeup]") {
  sbus::Wakeup wakeup;
  wakeup.fire();
  const auto started = Clock::now();
  CHECK_FALSE(wakeup.sleep(false, 10s));
  CHECK(Clock::now() - started < 5s);
}

TEST_CASE("A fire wakes a thread asleep on the Wakeup", "[wakeup]") {
  sbus::Wakeup wakeup;
  std::atomic<bool> woke{false};
  std::thread sleeper([&] {
    wakeup.sleep(true, 30s);
    woke = true;
  });
  std::this_thread::sleep_for(50ms);
  const auto fired = Clock::now();
  wakeup.fire();
  sleeper.join();
  CHECK(woke);
  CHECK(Clock::now() - fired < 10s);
}

TEST_CASE("A Wakeup nobody fires sleeps until its timeout", "[wakeup]") {
  sbus::Wakeup wakeup;
  const auto started = Clock::now();
  CHECK_FALSE(wakeup.sleep(false, 100ms));
  CHECK(Clock::now() - started >= 100ms);
}

TEST_CASE("A fire is taken once: the sleep after it waits again", "[wakeup]") {
  sbus::Wakeup wakeup;
  wakeup.fire();
  wakeup.fire();
  wakeup.sleep(false, 10s);
  const auto started = Clock::now();
  wakeup.sleep(false, 100ms);
  CHECK(Clock::now() - started >= 100ms);
}

TEST_CASE("A watched socket wakes the sleeper, which is told so", "[wakeup]") {
  SocketPair socket;
  sbus::Wakeup wakeup;
  REQUIRE(wakeup.watch(socket.near()));
  SECTION("a sleep with the socket returns true when data comes") {
    std::atomic<bool> by_socket{false};
    std::thread sleeper([&] { by_socket = wakeup.sleep(true, 30s); });
    std::this_thread::sleep_for(50ms);
    socket.send();
    sleeper.join();
    CHECK(by_socket);
  }
  SECTION("a sleep without the socket does not see it") {
    socket.send();
    const auto started = Clock::now();
    CHECK_FALSE(wakeup.sleep(false, 100ms));
    CHECK(Clock::now() - started >= 100ms);
  }
  SECTION("after unwatch() the socket wakes nobody") {
    wakeup.unwatch(socket.near());
    socket.send();
    CHECK_FALSE(wakeup.sleep(true, 100ms));
  }
}

TEST_CASE("Data for a seat holder asleep on the socket does not wake the connection thread", "[wakeup]") {
  SocketPair socket;
  sbus::Wakeup seat;
  REQUIRE(seat.watch(socket.near()));
  ConnectionEpoll connection(socket.near());
  std::atomic<bool> by_socket{false};
  std::thread holder([&] { by_socket = seat.sleep(true, 30s); });
  std::this_thread::sleep_for(100ms);  // the holder is asleep by now
  socket.send();
  holder.join();
  CHECK(by_socket);
  // The data is still unread, yet the kernel did not hand it to the
  // connection thread's epoll: the seat holder must read it, or say so.
  CHECK_FALSE(connection.woken(100));
}

TEST_CASE("Data while the seat holder is not asleep on the socket wakes the connection thread", "[wakeup]") {
  SocketPair socket;
  sbus::Wakeup seat;
  REQUIRE(seat.watch(socket.near()));
  ConnectionEpoll connection(socket.near());
  SECTION("the holder runs a job") {
    socket.send();
    CHECK(connection.woken(5000));
  }
  SECTION("the holder sleeps without the socket") {
    std::thread holder([&] { seat.sleep(false, 300ms); });
    std::this_thread::sleep_for(50ms);
    socket.send();
    CHECK(connection.woken(5000));
    holder.join();
  }
}

TEST_CASE("A Wakeup that gets no file descriptors throws an error that says so", "[wakeup]") {
  rlimit saved{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
  // Room for no new descriptor: the lowest free one is the count in use.
  const int lowest_free = ::dup(0);
  REQUIRE(lowest_free >= 0);
  ::close(lowest_free);
  rlimit none = saved;
  none.rlim_cur = static_cast<rlim_t>(lowest_free);
  REQUIRE(setrlimit(RLIMIT_NOFILE, &none) == 0);
  std::exception_ptr thrown;
  try {
    sbus::Wakeup wakeup;
  } catch (...) {
    thrown = std::current_exception();
  }
  // Looked at only with descriptors back: UBSan's checks of the object need one.
  REQUIRE(setrlimit(RLIMIT_NOFILE, &saved) == 0);
  REQUIRE(thrown);
  std::string message;
  try {
    std::rethrow_exception(thrown);
  } catch (const sbus::Error& e) {
    message = e.what();
  }
  CHECK(message.find("eventfd or epoll for a service thread") != std::string::npos);
  CHECK(message.find("open files") != std::string::npos);  // strerror(EMFILE)
}
