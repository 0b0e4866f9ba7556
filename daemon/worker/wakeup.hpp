// One thread sleeps until another wakes it, on a futex word: a hand-off
// costs the waker one FUTEX_WAKE and the sleeper one FUTEX_WAIT. (With
// std::condition_variable the woken thread also pays a FUTEX_WAKE when it
// unlocks its mutex: glibc relocks that mutex as contended after a wait.)
//
// The sleeper arms it while it holds the lock that guards its condition,
// releases the lock and sleeps; the waker changes the condition under that
// lock and fires after releasing it. A fire between arm and sleep makes the
// sleep return at once, so no wake-up is lost; sleep() may also return
// early, so the sleeper rechecks its condition.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace sbus {

class Wakeup {
 public:
  void arm() { word_.store(0, std::memory_order_relaxed); }

  void sleep() { futex(FUTEX_WAIT_PRIVATE, 0, nullptr); }

  void sleep_for(std::chrono::nanoseconds duration) {
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(duration);
    const timespec timeout{static_cast<time_t>(seconds.count()), static_cast<long>((duration - seconds).count())};
    futex(FUTEX_WAIT_PRIVATE, 0, &timeout);
  }

  void fire() {
    word_.store(1, std::memory_order_release);
    futex(FUTEX_WAKE_PRIVATE, 1, nullptr);
  }

 private:
  void futex(int op, std::uint32_t value, const timespec* timeout) {
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word_), op, value, timeout, nullptr, 0);
  }

  std::atomic<std::uint32_t> word_{0};
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
};

}  // namespace sbus
