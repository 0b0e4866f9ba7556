#include "base/crash_journal.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

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

CrashJournal* CrashJournal::open_file(const std::string& path, int lock_wait_ms, std::string* error, int* imported) {
  *imported = 0;
  const auto fail = [&](const std::string& what, int fd) {
    const int saved = errno;
    if (fd >= 0) ::close(fd);
    *error = what + " " + path + ": " + std::strerror(saved);
    return nullptr;
  };
  // Not closed on exec; kept open by this process and, through the fork,
  // by its workers: the lock lasts while any of them lives.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail("cannot open the crash journal", -1);
  const auto give_up_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(lock_wait_ms);
  // The workers of a killed sbusd may take a moment to die (PDEATHSIG).
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK || std::chrono::steady_clock::now() >= give_up_at) {
      return fail("cannot lock (another sbusd uses this state_dir?) the crash journal", fd);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0) return fail("cannot stat the crash journal", fd);
  if (!S_ISREG(info.st_mode) || info.st_uid != ::geteuid()) {
    errno = EPERM;
    return fail("not a regular file of this user: the crash journal", fd);
  }
  // Another size: another layout, read as empty.
  const bool readable = static_cast<std::size_t>(info.st_size) == sizeof(CrashJournal);
  if (!readable && (::ftruncate(fd, 0) != 0 || ::ftruncate(fd, sizeof(CrashJournal)) != 0)) {
    return fail("cannot size the crash journal", fd);
  }
  void* memory = mmap(nullptr, sizeof(CrashJournal), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (memory == MAP_FAILED) return fail("cannot map the crash journal", fd);
  auto* journal = static_cast<CrashJournal*>(memory);
  if (!readable) return journal;
  // What the last sbusd left: the keys returned but not recorded, oldest
  // first. Then the file is emptied (punched, not written: its pages stay
  // untouched) and they are put back into the ring.
  std::vector<std::uint64_t> keys;
  const std::uint32_t next = load(journal->returned_next_);
  for (std::size_t i = 0; i < kReturnedRing; ++i) {
    const std::uint64_t key = load(journal->returned_[(next + i) % kReturnedRing]);
    if (key != 0) keys.push_back(key);
  }
  const std::size_t before = keys.size();
  for (std::size_t slot = 0; slot < journal->slots_in_use(); ++slot) {
    for (const std::uint64_t& mark : journal->marks_[slot]) {
      if (load(mark) != 0) keys.push_back(load(mark));
    }
  }
  *imported = static_cast<int>(keys.size() - before);
  if (::ftruncate(fd, 0) != 0 || ::ftruncate(fd, sizeof(CrashJournal)) != 0) {
    munmap(memory, sizeof(CrashJournal));
    return fail("cannot empty the crash journal", fd);
  }
  const std::size_t skip = keys.size() > kReturnedRing ? keys.size() - kReturnedRing : 0;
  for (std::size_t i = skip; i < keys.size(); ++i) journal->add_returned(keys[i]);
  return journal;
}

void CrashJournal::drop_resident_pages() {
  ::madvise(static_cast<void*>(this), sizeof(CrashJournal), MADV_DONTNEED);
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

int CrashJournal::mark_returned(int slot, std::uint64_t key) {
  if (slot < 0) return -1;
  std::uint64_t* marks = marks_[slot];
  // Only this thread sets its marks, so a free one stays free until set.
  for (std::size_t i = 0; i < kMarks; ++i) {
    if (load(marks[i]) == 0) {
      store(marks[i], key);
      return static_cast<int>(static_cast<std::size_t>(slot) * kMarks + i);
    }
  }
  return -1;
}

void CrashJournal::add_returned(std::uint64_t key) {
  const std::uint32_t at = std::atomic_ref(returned_next_).fetch_add(1, std::memory_order_acq_rel) % kReturnedRing;
  store(returned_[at], key);
}

int CrashJournal::move_marks(std::size_t slot) {
  int moved = 0;
  for (std::uint64_t& mark : marks_[slot]) {
    const std::uint64_t key = load(mark);
    if (key == 0) continue;
    // Into the ring before out of the mark, as the running keys.
    add_returned(key);
    store(mark, std::uint64_t{0});
    ++moved;
  }
  return moved;
}

bool CrashJournal::returned(std::uint64_t key) const {
  const std::size_t filled = std::min<std::size_t>(load(returned_next_), kReturnedRing);
  for (std::size_t i = 0; i < filled; ++i) {
    if (load(returned_[i]) == key) return true;
  }
  return false;
}

void CrashJournal::release_slot(int slot) {
  if (slot < 0) return;
  move_marks(static_cast<std::size_t>(slot));
  store(slots_[slot].pid, pid_t{0});
}

int CrashJournal::worker_died(pid_t pid, bool crashed, std::int64_t now_ns, int* returned) {
  int interrupted = 0;
  int moved = 0;
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
    moved += move_marks(i);
    store(slot.pid, pid_t{0});
  }
  if (returned != nullptr) *returned = moved;
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
