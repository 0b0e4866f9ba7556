#include "common/replay_cache.hpp"

#include <sys/mman.h>

#include <atomic>

namespace sbus {

ReplayCache* ReplayCache::create(bool shared) {
  const int flags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS;
  void* memory = mmap(nullptr, sizeof(ReplayCache), PROT_READ | PROT_WRITE, flags, -1, 0);
  if (memory == MAP_FAILED) return nullptr;
  // An implicit-lifetime type on zero-filled pages: every slot free, and
  // no page touched until a nonce lands on it.
  return static_cast<ReplayCache*>(memory);
}

ReplayCache::Result ReplayCache::remember(std::string_view nonce, std::int64_t expires, std::int64_t now) {
  std::uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : nonce) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  if (hash == 0) hash = 1;
  const std::size_t start = static_cast<std::size_t>(hash % kSlots);
  for (std::size_t i = 0; i < kProbe; ++i) {
    Slot& slot = slots_[(start + i) % kSlots];
    std::atomic_ref<std::uint64_t> slot_hash(slot.hash);
    std::atomic_ref<std::int64_t> slot_expires(slot.expires);
    std::uint64_t current = slot_hash.load(std::memory_order_acquire);
    if (current == hash && slot_expires.load(std::memory_order_acquire) >= now) return Result::kReplayed;
    if (current == 0 || slot_expires.load(std::memory_order_acquire) < now) {
      // Free or expired: claim it. Losing the race means another process
      // took it: look further.
      if (slot_hash.compare_exchange_strong(current, hash, std::memory_order_acq_rel)) {
        slot_expires.store(expires, std::memory_order_release);
        return Result::kFresh;
      }
      if (current == hash) return Result::kReplayed;
    }
  }
  return Result::kFull;
}

}  // namespace sbus
