// Which calls were running when a worker died, shared by the supervisor and
// its workers through memory mapped before the first fork.
//
// A call that was running when its worker crashed is redelivered by the
// broker (it was not acked). Running it again could crash the next worker
// too, and an RPC is not assumed idempotent; so before it runs a redelivered
// delivery, a worker asks the journal whether that delivery was already
// started somewhere, and answers an error instead.
//
// Each service thread holds one slot: {pid, its service, key of the running
// delivery}. When the supervisor reaps a worker, it moves the keys of that
// worker's slots into a ring of interrupted keys and frees the slots; when
// the worker crashed (a signal, not an exit), it also notes the time and
// service of each such call in a ring of crashes, so that a restarted worker
// sees which services keep crashing it. All fields are lock-free atomics: a
// process can die anywhere without leaving a lock held. They are plain
// integers accessed through std::atomic_ref, so that mapping the journal
// writes nothing: a page is made resident only by the first slot on it, and
// scans stop at the highest slot ever claimed (the supervisor's RSS).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string_view>
#include <vector>

namespace sbus {

class CrashJournal {
 public:
  static constexpr std::size_t kSlots = 4096;
  static constexpr std::size_t kRing = 1024;
  static constexpr std::size_t kCrashRing = 256;

  // Maps a journal shared with every process forked afterwards; nullptr if
  // mmap fails (then workers run without the check).
  static CrashJournal* create();

  // A delivery's identity: its reply_to, correlation_id and event id.
  static std::uint64_t key(std::string_view reply_to, std::string_view correlation_id, std::string_view event_id);

  // A service's identity in the journal: CATEGORY.SERVICE hashed, never 0.
  static std::uint64_t service_key(std::string_view name) { return key(name, {}, {}); }

  // Service thread: takes a free slot for this process and `service` (a
  // service_key()); -1 when full.
  int claim_slot(pid_t pid, std::uint64_t service = 0);
  void begin(int slot, std::uint64_t key) {
    if (slot >= 0) std::atomic_ref(slots_[slot].key).store(key, std::memory_order_release);
  }
  void end(int slot) {
    if (slot >= 0) std::atomic_ref(slots_[slot].key).store(0, std::memory_order_release);
  }
  void release_slot(int slot) {
    if (slot >= 0) std::atomic_ref(slots_[slot].pid).store(0, std::memory_order_release);
  }

  // Supervisor, after reaping `pid`: records what it was running; returns how
  // many calls were interrupted. With `crashed` (killed by a signal), each
  // of them also counts as a crash of its service at `now_ns` (the
  // steady_clock's count: CLOCK_MONOTONIC, the same in every process).
  int worker_died(pid_t pid, bool crashed = false, std::int64_t now_ns = 0);

  // Worker: the times (steady_clock nanoseconds) of the crashes of
  // `service` that the ring remembers, oldest first.
  std::vector<std::int64_t> crash_times(std::uint64_t service) const;

  // Worker: true when `key` was interrupted by a dead worker, or is running
  // in another slot right now.
  bool started_elsewhere(std::uint64_t key) const;

  // How many times `key` was interrupted by a dying worker (as far as the
  // ring remembers).
  int interruptions(std::uint64_t key) const;

 private:
  struct Slot {
    pid_t pid;
    std::uint64_t key;
    std::uint64_t service;
  };
  // Written by the supervisor alone; `service` last, so that a reader that
  // finds it set finds its time set too.
  struct Crash {
    std::uint64_t service;
    std::int64_t at_ns;
  };
  // How many slots the scans look at: one past the highest claimed so far.
  std::size_t slots_in_use() const;

  Slot slots_[kSlots];
  std::uint64_t ring_[kRing];
  std::uint32_t ring_next_;
  Crash crashes_[kCrashRing];
  std::uint32_t crash_next_;
  std::uint32_t slots_high_;
};

}  // namespace sbus
