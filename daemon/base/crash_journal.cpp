#include "base/crash_journal.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <new>

namespace sbus {

static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "the journal needs lock-free atomics");

CrashJournal* CrashJournal::create() {
  void* memory = mmap(nullptr, sizeof(CrashJournal), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return nullptr;
  // Anonymous mappings are zeroed: every slot free, the ring empty.
  return new (memory) CrashJournal;
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

int CrashJournal::claim_slot(pid_t pid, std::uint64_t service) {
  for (std::size_t i = 0; i < kSlots; ++i) {
    pid_t expected = 0;
    if (slots_[i].pid.compare_exchange_strong(expected, pid, std::memory_order_acq_rel)) {
      slots_[i].key.store(0, std::memory_order_release);
      slots_[i].service.store(service, std::memory_order_release);
      return static_cast<int>(i);
    }
  }
  return -1;
}

int CrashJournal::worker_died(pid_t pid, bool crashed, std::int64_t now_ns) {
  int interrupted = 0;
  for (Slot& slot : slots_) {
    if (slot.pid.load(std::memory_order_acquire) != pid) continue;
    // Into the ring before out of the slot: a worker checking meanwhile
    // finds the key in one place or the other, never in neither.
    const std::uint64_t key = slot.key.load(std::memory_order_acquire);
    if (key != 0) {
      std::uint32_t at = ring_next_.fetch_add(1, std::memory_order_acq_rel) % kRing;
      ring_[at].store(key, std::memory_order_release);
      ++interrupted;
      const std::uint64_t service = slot.service.load(std::memory_order_acquire);
      if (crashed && service != 0) {
        Crash& crash = crashes_[crash_next_.fetch_add(1, std::memory_order_acq_rel) % kCrashRing];
        crash.service.store(0, std::memory_order_release);
        crash.at_ns.store(now_ns, std::memory_order_release);
        crash.service.store(service, std::memory_order_release);
      }
    }
    slot.key.store(0, std::memory_order_release);
    slot.pid.store(0, std::memory_order_release);
  }
  return interrupted;
}

std::vector<std::int64_t> CrashJournal::crash_times(std::uint64_t service) const {
  std::vector<std::int64_t> times;
  for (const Crash& crash : crashes_) {
    if (crash.service.load(std::memory_order_acquire) == service) {
      times.push_back(crash.at_ns.load(std::memory_order_acquire));
    }
  }
  std::sort(times.begin(), times.end());
  return times;
}

int CrashJournal::interruptions(std::uint64_t key) const {
  int count = 0;
  for (const auto& entry : ring_) count += entry.load(std::memory_order_acquire) == key;
  return count;
}

bool CrashJournal::started_elsewhere(std::uint64_t key) const {
  for (const auto& entry : ring_) {
    if (entry.load(std::memory_order_acquire) == key) return true;
  }
  for (const Slot& slot : slots_) {
    if (slot.key.load(std::memory_order_acquire) == key) return true;
  }
  return false;
}

}  // namespace sbus
