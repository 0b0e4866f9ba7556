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
//
// Handled once (docs/reliability.md#handled-once): a slot also holds the
// "returned" marks of its service thread. The moment a handler of a
// delivery with a message id has returned and what it sent is released, the
// thread stores a hash of the delivery's handled-store key in a free mark of
// its slot (one atomic store); the connection thread clears it once the id
// is recorded in the handled store. A worker killed in between leaves the
// mark: the supervisor moves it into a ring of returned keys, and the next
// worker takes a redelivery with that key as handled (a duplicate) instead
// of running it again. Kept in a file under state_dir (open_file()), the
// marks and that ring outlive the whole sbusd too (a SIGKILL of every
// process): the next sbusd moves the marks it finds into the ring.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sbus {

class CrashJournal {
 public:
  static constexpr std::size_t kSlots = 4096;
  static constexpr std::size_t kRing = 1024;
  static constexpr std::size_t kCrashRing = 256;
  static constexpr std::size_t kMarks = 64;  // returned, not yet recorded, per service thread
  static constexpr std::size_t kReturnedRing = 4096;

  // Maps a journal shared with every process forked afterwards; nullptr if
  // mmap fails (then workers run without the check).
  static CrashJournal* create();

  // The journal kept in the file `path` (mode 0600), locked (flock) by this
  // process and those it forks, so that one sbusd at a time uses it. What a
  // killed sbusd left in it is read: the keys its threads had marked
  // returned go into the ring of returned keys (*imported says how many);
  // everything else starts empty, as with create(). nullptr with the
  // reason, naming the file, in `error` when it cannot be opened, mapped or
  // locked within `lock_wait_ms` (another sbusd on the same state_dir).
  static CrashJournal* open_file(const std::string& path, int lock_wait_ms, std::string* error, int* imported);

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
  // Marks still set (deliveries whose record is still to come) go into the
  // ring of returned keys: a slot is free of them once released.
  void release_slot(int slot);

  // Service thread of `slot`, the moment a handler of the delivery whose
  // handled-store key hashes to `key` (service_key() of it) has returned
  // and what it sent is released: marks it returned. Returns the mark, for
  // clear_mark(); -1 when the slot has none free (then a kill before the
  // record runs the delivery again, as without the mark).
  int mark_returned(int slot, std::uint64_t key);
  // Connection thread, once the mark's key is recorded in the handled store
  // (or cannot be): frees the mark, if it still holds `key` (a released
  // slot's marks may have been taken by another thread since). -1 is
  // ignored.
  void clear_mark(int mark, std::uint64_t key) {
    if (mark < 0) return;
    std::atomic_ref(marks_[mark / kMarks][mark % kMarks]).compare_exchange_strong(key, 0, std::memory_order_acq_rel);
  }
  // Worker: true when a killed worker (or sbusd) had marked `key` returned.
  // Scans the part of the ring filled so far: nothing while no worker died
  // with a mark, a few hundred keys after several such deaths.
  bool returned(std::uint64_t key) const;

  // Supervisor, after reaping `pid`: records what it was running; returns how
  // many calls were interrupted. With `crashed` (killed by a signal), each
  // of them also counts as a crash of its service at `now_ns` (the
  // steady_clock's count: CLOCK_MONOTONIC, the same in every process). The
  // keys its threads had marked returned go into the ring of returned keys
  // (*returned says how many, when given).
  int worker_died(pid_t pid, bool crashed = false, std::int64_t now_ns = 0, int* returned = nullptr);

  // Supervisor: lets go of the pages of the journal this process has made
  // resident (a scan after a worker's death, the import of a file). The
  // mapping is shared, so nothing is lost: the next access maps the same
  // contents again; only this process's RSS shrinks.
  void drop_resident_pages();

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
  // Moves the marks of `slot` into the ring of returned keys; how many.
  int move_marks(std::size_t slot);
  void add_returned(std::uint64_t key);

  Slot slots_[kSlots];
  std::uint64_t ring_[kRing];
  std::uint32_t ring_next_;
  Crash crashes_[kCrashRing];
  std::uint32_t crash_next_;
  std::uint32_t slots_high_;
  std::uint64_t returned_[kReturnedRing];
  std::uint32_t returned_next_;
  // Last: the pages of a thread's marks are touched only once it marks.
  std::uint64_t marks_[kSlots][kMarks];
};

}  // namespace sbus
