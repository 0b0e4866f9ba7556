#include "base/replay_cache.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace sbus {

ReplayCache* ReplayCache::create(bool shared) {
  const int flags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS;
  void* memory = mmap(nullptr, sizeof(ReplayCache), PROT_READ | PROT_WRITE, flags, -1, 0);
  if (memory == MAP_FAILED) return nullptr;
  // An implicit-lifetime type on zero-filled pages: every slot free, and
  // no page touched until a nonce lands on it.
  return static_cast<ReplayCache*>(memory);
}

ReplayCache* ReplayCache::open_file(const std::string& path, std::string* error) {
  const auto fail = [&](const std::string& what) {
    *error = what + ": " + std::strerror(errno);
    return nullptr;
  };
  const std::size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    const std::string folder = path.substr(0, slash);
    if (::mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST) return fail("cannot create state_dir " + folder);
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
  if (fd < 0) return fail("cannot open the replay file " + path);
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    ::close(fd);
    return fail("cannot stat the replay file " + path);
  }
  if (!S_ISREG(info.st_mode) || info.st_uid != ::geteuid()) {
    ::close(fd);
    *error =
        "the replay file " + path + " is not a regular file of this user (uid " + std::to_string(::geteuid()) + ")";
    return nullptr;
  }
  // Another size: another layout. Emptied rather than misread; the skew
  // window of the calls it held is the only loss.
  if (static_cast<std::size_t>(info.st_size) != sizeof(ReplayCache) &&
      (::ftruncate(fd, 0) != 0 || ::ftruncate(fd, sizeof(ReplayCache)) != 0)) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    return fail("cannot size the replay file " + path);
  }
  void* memory = mmap(nullptr, sizeof(ReplayCache), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int saved = errno;
  ::close(fd);
  if (memory == MAP_FAILED) {
    errno = saved;
    return fail("cannot map the replay file " + path);
  }
  return static_cast<ReplayCache*>(memory);
}

namespace {

// FNV-1a; 0 marks a free slot.
std::uint64_t nonce_hash(std::string_view nonce) {
  std::uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : nonce) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash == 0 ? 1 : hash;
}

}  // namespace

ReplayCache::Result ReplayCache::remember(std::string_view nonce, std::int64_t expires, std::int64_t now) {
  const std::uint64_t hash = nonce_hash(nonce);
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

// Expired at once: the slot is free for any nonce, and this one is fresh
// again.
void ReplayCache::forget(std::string_view nonce) {
  const std::uint64_t hash = nonce_hash(nonce);
  const std::size_t start = static_cast<std::size_t>(hash % kSlots);
  for (std::size_t i = 0; i < kProbe; ++i) {
    Slot& slot = slots_[(start + i) % kSlots];
    if (std::atomic_ref<std::uint64_t>(slot.hash).load(std::memory_order_acquire) == hash) {
      std::atomic_ref<std::int64_t>(slot.expires).store(0, std::memory_order_release);
      return;
    }
  }
}

}  // namespace sbus
