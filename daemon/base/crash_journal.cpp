#include "base/crash_journal.hpp"

#include <sys/mman.h>

#include <algorithm>

namespace sbus {

static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free && std::atomic_ref<pid_t>::is_always_lock_free,
              "the journal needs lock-free atomics");

namespace {
template <typename T>
T load(const T& field) {
  return std::atomic_ref(const_cast<T&>(field)).load(std::memory_order_acquire);
}
template <typename T>
void store(T& field, T value) {
  std::atomic_ref(field).store(value, std::memory_order_release);
}
}  // namespace

CrashJournal* CrashJournal::create() {
  void* memory = mmap(nullptr, sizeof(CrashJournal), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return nullptr;
  // An implicit-lifetime type on zero-filled pages: every slot free, the
  // rings empty, and no page touched until a slot on it is claimed.
  return static_cast<CrashJournal*>(memory);
}

std::uint64_t CrashJournal::key(std::string_view reply_to, std::string_view correlation_id, std::string_view event_id) {
  // FNV-1a over the three fields with separators; 0 is kept for "empty".
  std::uint64_t hash = 14695981039346656037ull;
  auto mix = [&hash](std::string_view text) {
    for (unsigned char c : text) {
      hash ^= c;
      hash *= 1099511628211ull;
    }
    hash ^= 0xff;
    hash *= 1099511628211ull;
  };
  mix(reply_to);
  mix(correlation_id);
  mix(event_id);
  return hash == 0 ? 1 : hash;
}

std::size_t CrashJournal::slots_in_use() const {
  return std::min<std::size_t>(load(slots_high_), kSlots);
}

int CrashJournal::claim_slot(pid_t pid, std::uint64_t service) {
  for (std::size_t i = 0; i < kSlots; ++i) {
    pid_t expected = 0;
    if (std::atomic_ref(slots_[i].pid).compare_exchange_strong(expected, pid, std::memory_order_acq_rel)) {
      store(slots_[i].key, std::uint64_t{0});
      store(slots_[i].service, service);
      // Raised after the pid is in: a scan that misses this slot could not
      // have found its key yet either (begin() comes later).
      std::atomic_ref high(slots_high_);
      std::uint32_t seen = high.load(std::memory_order_acquire);
      const auto wanted = static_cast<std::uint32_t>(i + 1);
      while (seen < wanted && !high.compare_exchange_weak(seen, wanted, std::memory_order_acq_rel)) {
      }
      return static_cast<int>(i);
    }
  }
  return -1;
}

int CrashJournal::worker_died(pid_t pid, bool crashed, std::int64_t now_ns) {
  int interrupted = 0;
  const std::size_t in_use = slots_in_use();
  for (std::size_t i = 0; i < in_use; ++i) {
    Slot& slot = slots_[i];
    if (load(slot.pid) != pid) continue;
    // Into the ring before out of the slot: a worker checking meanwhile
    // finds the key in one place or the other, never in neither.
    const std::uint64_t key = load(slot.key);
    if (key != 0) {
      std::uint32_t at = std::atomic_ref(ring_next_).fetch_add(1, std::memory_order_acq_rel) % kRing;
      store(ring_[at], key);
      ++interrupted;
      const std::uint64_t service = load(slot.service);
      if (crashed && service != 0) {
        Crash& crash = crashes_[std::atomic_ref(crash_next_).fetch_add(1, std::memory_order_acq_rel) % kCrashRing];
        store(crash.service, std::uint64_t{0});
        store(crash.at_ns, now_ns);
        store(crash.service, service);
      }
    }
    store(slot.key, std::uint64_t{0});
    store(slot.pid, pid_t{0});
  }
  return interrupted;
}

std::vector<std::int64_t> CrashJournal::crash_times(std::uint64_t service) const {
  std::vector<std::int64_t> times;
  for (const Crash& crash : crashes_) {
    if (load(crash.service) == service) times.push_back(load(crash.at_ns));
  }
  std::sort(times.begin(), times.end());
  return times;
}

int CrashJournal::interruptions(std::uint64_t key) const {
  int count = 0;
  for (const std::uint64_t& entry : ring_) count += load(entry) == key;
  return count;
}

bool CrashJournal::started_elsewhere(std::uint64_t key) const {
  for (const std::uint64_t& entry : ring_) {
    if (load(entry) == key) return true;
  }
  const std::size_t in_use = slots_in_use();
  for (std::size_t i = 0; i < in_use; ++i) {
    if (load(slots_[i].key) == key) return true;
  }
  return false;
}

}  // namespace sbus
