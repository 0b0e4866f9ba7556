#include "worker/handled_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <tuple>
#include <utility>

#include "base/log.hpp"
#include "config/config.hpp"

namespace sbus {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kStamp = 8;  // a time in ms, or a sequence number
// Ids pruned with each record: more than one, so that a store over a
// lowered max_ids shrinks while it is used.
constexpr std::uint64_t kPrunePerRecord = 4;
constexpr std::uint64_t kPrunePerSync = 100000;
// More than LMDB's lock file takes with its default 126 readers (8 KiB).
constexpr off_t kLockFileBytes = 32 * 1024;

// Where this process maps the file `st` (LMDB says where only with
// MDB_FIXEDMAP): its line of /proc/self/maps. {nullptr, 0} when not found.
std::pair<void*, std::size_t> find_map(const struct stat& st) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::uintptr_t begin = 0;
    std::uintptr_t end = 0;
    unsigned dev_major = 0;
    unsigned dev_minor = 0;
    std::uint64_t inode = 0;
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR " %*s %*x %x:%x %" SCNu64, &begin, &end, &dev_major,
                    &dev_minor, &inode) == 5 &&
        inode == st.st_ino && dev_major == major(st.st_dev) && dev_minor == minor(st.st_dev)) {
      return {reinterpret_cast<void*>(begin), end - begin};
    }
  }
  return {nullptr, 0};
}

// The codes that say the file is not a sound LMDB environment.
bool corrupt_code(int rc) {
  return rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_CORRUPTED || rc == MDB_PANIC ||
         rc == MDB_PAGE_NOTFOUND || rc == MDB_INCOMPATIBLE || rc == MDB_BAD_TXN;
}

void put_stamp(std::uint64_t value, char* out) {
  for (std::size_t i = 0; i < kStamp; ++i) out[i] = static_cast<char>(value >> (8 * (kStamp - 1 - i)));
}

std::uint64_t get_stamp(const char* in) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < kStamp; ++i) value = (value << 8) | static_cast<unsigned char>(in[i]);
  return value;
}

MDB_val val(std::string_view text) {
  return MDB_val{text.size(), const_cast<char*>(text.data())};
}

std::string_view view(const MDB_val& value) {
  return std::string_view(static_cast<const char*>(value.mv_data), value.mv_size);
}

std::int64_t unix_ms(std::chrono::system_clock::time_point at) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
}

// Closes a transaction that was not committed, on every way out.
struct TxnGuard {
  MDB_txn* txn = nullptr;
  ~TxnGuard() {
    if (txn != nullptr) mdb_txn_abort(txn);
  }
  int commit() {
    const int rc = mdb_txn_commit(txn);
    txn = nullptr;
    return rc;
  }
};

// Holds an flock on the store's folder while workers open it, so that one
// at a time finds a corrupted file and moves it aside.
class FolderLock {
 public:
  explicit FolderLock(const std::string& dir)
      : fd_(::open((dir + "/open.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~FolderLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;
  int error() const { return fd_ >= 0 ? 0 : errno; }

 private:
  int fd_;
};

}  // namespace

HandledStoreOptions handled_store_options(const Config& config) {
  HandledStoreOptions options;
  options.dir = handled_dir_of(config);
  options.keep = std::chrono::seconds(config.handled_keep_seconds);
  options.max_ids = static_cast<std::uint64_t>(config.handled_max_ids);
  options.max_reply_bytes = static_cast<std::size_t>(config.handled_reply_max_bytes);
  options.max_bytes = static_cast<std::uint64_t>(config.handled_max_bytes);
  return options;
}

std::unique_ptr<HandledStore> HandledStore::open(const HandledStoreOptions& options, std::string* warning) {
  warning->clear();
  std::unique_ptr<HandledStore> store(new HandledStore(options));
  store->open_env(warning);
  return store;
}

HandledStore::~HandledStore() {
  close_env();
}

void HandledStore::close_env() {
  if (reader_ != nullptr) mdb_txn_abort(reader_);
  reader_ = nullptr;
  if (env_ != nullptr) mdb_env_close(env_);
  env_ = nullptr;
  map_ = nullptr;
  map_bytes_ = 0;
}

void HandledStore::open_env(std::string* warning) {
  std::error_code ec;
  fs::create_directories(options_.dir, ec);
  if (ec) throw StoreError("handled store " + options_.dir + ": cannot create the folder: " + ec.message());
  const FolderLock lock(options_.dir);
  if (lock.error() != 0) {
    throw StoreError("handled store " + options_.dir + ": cannot open " + options_.dir +
                     "/open.lock: " + std::strerror(lock.error()));
  }
  reserve_lock_file();
  int rc = try_open();
  if (corrupt_code(rc) && !options_.repair) {
    close_env();
    throw StoreError("handled store " + file() + " is corrupted (" + mdb_strerror(rc) +
                     "): sbusd moves it aside and creates it anew when it starts");
  }
  if (corrupt_code(rc)) {
    close_env();
    const std::string aside = file() + ".corrupt-" + std::to_string(unix_ms(std::chrono::system_clock::now()) / 1000);
    fs::rename(file(), aside, ec);
    if (ec)
      throw StoreError("handled store " + file() + " is corrupted (" + mdb_strerror(rc) +
                       ") and cannot be moved aside: " + ec.message());
    fs::remove(options_.dir + "/lock.mdb", ec);
    *warning = "handled store " + file() + " was corrupted (" + mdb_strerror(rc) + "): moved aside to " + aside +
               " and created anew; the ids it held are forgotten";
    rc = try_open();
  }
  if (rc != 0) {
    close_env();
    throw StoreError("handled store " + options_.dir + ": " + mdb_strerror(rc));
  }
}

// LMDB writes its lock file through a memory map: on a full disk a page
// that has no block yet would kill the process (SIGBUS). Its blocks are
// taken first, with an error that can be reported.
void HandledStore::reserve_lock_file() {
  const std::string path = options_.dir + "/lock.mdb";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw StoreError("handled store " + path + ": " + std::strerror(errno));
  const int rc = ::posix_fallocate(fd, 0, kLockFileBytes);
  ::close(fd);
  if (rc != 0) throw StoreError("handled store " + path + ": cannot reserve its space: " + std::strerror(rc));
}

// Opens the environment and its two tables, and reads each end of both, so
// that a file whose pages are damaged is found here rather than in use.
int HandledStore::try_open() {
  int rc = mdb_env_create(&env_);
  if (rc != 0) return rc;
  mdb_env_set_maxdbs(env_, 2);
  mdb_env_set_mapsize(env_, options_.max_bytes);
  rc = mdb_env_open(env_, options_.dir.c_str(), MDB_NOSYNC | MDB_NOTLS | MDB_NORDAHEAD, 0600);
  if (rc != 0) return rc;
  int stale = 0;
  mdb_reader_check(env_, &stale);  // slots of readers killed mid-read
  TxnGuard txn;
  rc = mdb_txn_begin(env_, nullptr, 0, &txn.txn);
  if (rc == 0) rc = mdb_dbi_open(txn.txn, "ids", MDB_CREATE, &ids_);
  if (rc == 0) rc = mdb_dbi_open(txn.txn, "order", MDB_CREATE, &order_);
  for (MDB_dbi dbi : {ids_, order_}) {
    MDB_cursor* cursor = nullptr;
    if (rc == 0) rc = mdb_cursor_open(txn.txn, dbi, &cursor);
    MDB_val key;
    MDB_val data;
    for (MDB_cursor_op op : {MDB_FIRST, MDB_LAST}) {
      if (rc != 0) break;
      rc = mdb_cursor_get(cursor, &key, &data, op);
      if (rc == MDB_NOTFOUND) rc = 0;
    }
    if (cursor != nullptr) mdb_cursor_close(cursor);
  }
  if (rc == 0) rc = txn.commit();
  if (rc != 0) return rc;
  struct stat st {};
  if (::stat(file().c_str(), &st) == 0) {
    inode_ = st.st_ino;
    std::tie(map_, map_bytes_) = find_map(st);
  }
  // What the checks and LMDB's first transaction read (the free list of a
  // large store among it, several hundred KB) stays out of the idle RSS.
  release_map();
  return 0;
}

std::string HandledStore::key(std::string_view service, std::string_view caller, std::string_view message_id) {
  // LMDB's default limit is 511 bytes.
  if (service.size() + caller.size() + message_id.size() + 2 > 511) return {};
  std::string key;
  key.reserve(service.size() + caller.size() + message_id.size() + 2);
  key.append(service).append(1, '\x1f').append(caller).append(1, '\x1f').append(message_id);
  return key;
}

std::optional<HandledRecord> HandledStore::find(std::string_view key) {
  if (env_ == nullptr || key.empty()) return std::nullopt;
  int rc = reader_ != nullptr ? mdb_txn_renew(reader_) : mdb_txn_begin(env_, nullptr, MDB_RDONLY, &reader_);
  if (rc != 0) {
    SBUS_LOG_LIMITED(kError, "handled store") << "handled store " << options_.dir << ": read: " << mdb_strerror(rc);
    return std::nullopt;
  }
  MDB_val k = val(key);
  MDB_val data;
  rc = mdb_get(reader_, ids_, &k, &data);
  std::optional<HandledRecord> found;
  if (rc == 0 && data.mv_size > kStamp) {
    const std::string_view value = view(data);
    found.emplace();
    found->kind = static_cast<HandledRecord::Kind>(value[kStamp]);
    if (found->kind == HandledRecord::Kind::kReply) found->reply.assign(value.substr(kStamp + 1));
  } else if (rc != 0 && rc != MDB_NOTFOUND) {
    SBUS_LOG_LIMITED(kError, "handled store") << "handled store " << options_.dir << ": read: " << mdb_strerror(rc);
  }
  mdb_txn_reset(reader_);
  return found;
}

int HandledStore::put(MDB_txn* txn, std::string_view key, HandledRecord::Kind kind, const std::string* reply,
                      std::int64_t now_ms, std::size_t prune_budget) {
  // A reply that would take a sixteenth of the map is not kept whatever
  // the cap says: the map must keep room to delete in.
  const bool keep_reply = kind == HandledRecord::Kind::kReply && reply != nullptr && keeps_reply(reply->size());
  if (kind == HandledRecord::Kind::kReply && !keep_reply) kind = HandledRecord::Kind::kReplyNotKept;
  // Room first: LMDB copies the pages it changes, so even a delete needs
  // free pages, and a map that is full cannot be pruned.
  if (std::uint64_t held = 0; used_bytes(txn, &held) > options_.max_bytes / 4 * 3) {
    const std::uint64_t deleted = prune(txn, 0, std::max<std::uint64_t>(1, held / 8), true);
    SBUS_LOG_LIMITED(kInfo, "handled store full")
        << "handled store " << options_.dir << " is three quarters full (handled_max_bytes " << options_.max_bytes
        << "): forgot the " << deleted << " oldest of " << held << " ids";
  }
  std::string value(kStamp + 1, '\0');
  put_stamp(static_cast<std::uint64_t>(now_ms), value.data());
  value[kStamp] = static_cast<char>(kind);
  if (keep_reply) value += *reply;
  MDB_val k = val(key);
  MDB_val v = val(value);
  int rc = mdb_put(txn, ids_, &k, &v, MDB_NOOVERWRITE);
  if (rc == MDB_KEYEXIST) return 0;  // another worker handled it too: the first record stands
  if (rc != 0) return rc;
  MDB_cursor* cursor = nullptr;
  rc = mdb_cursor_open(txn, order_, &cursor);
  if (rc != 0) return rc;
  MDB_val last_key;
  MDB_val last_value;
  rc = mdb_cursor_get(cursor, &last_key, &last_value, MDB_LAST);
  const std::uint64_t seq = rc == 0 && last_key.mv_size == kStamp ? get_stamp(view(last_key).data()) + 1 : 1;
  mdb_cursor_close(cursor);
  if (rc != 0 && rc != MDB_NOTFOUND) return rc;
  char seq_key[kStamp];
  put_stamp(seq, seq_key);
  std::string entry(kStamp, '\0');
  put_stamp(static_cast<std::uint64_t>(now_ms), entry.data());
  entry.append(key);
  MDB_val sk{kStamp, seq_key};
  MDB_val sv = val(entry);
  rc = mdb_put(txn, order_, &sk, &sv, MDB_APPEND);
  if (rc != 0) return rc;
  prune(txn, now_ms, prune_budget, false);
  return 0;
}

bool HandledStore::record(std::string_view key, const std::string* reply, std::chrono::system_clock::time_point now) {
  return record(key, reply == nullptr ? HandledRecord::Kind::kMessage : HandledRecord::Kind::kReply, reply, now);
}

std::size_t HandledStore::record_all(const std::vector<Entry>& entries, std::chrono::system_clock::time_point now) {
  if (env_ == nullptr || entries.empty()) return 0;
  auto kind_of = [](const Entry& entry) { return entry.reply != nullptr ? HandledRecord::Kind::kReply : entry.kind; };
  if (entries.size() == 1) return record(entries[0].key, kind_of(entries[0]), entries[0].reply, now) ? 1 : 0;
  int rc = 0;
  std::size_t recorded = 0;
  {
    TxnGuard txn;
    rc = mdb_txn_begin(env_, nullptr, 0, &txn.txn);
    for (const Entry& entry : entries) {
      if (rc != 0) break;
      if (entry.key.empty()) continue;
      rc = put(txn.txn, entry.key, kind_of(entry), entry.reply, unix_ms(now), kPrunePerRecord);
      recorded += rc == 0;
    }
    if (rc == 0) rc = txn.commit();
  }
  if (rc == 0) return recorded;
  // The transaction is gone with all it held: each on its own, with room
  // made as record() makes it, and the failure logged there.
  recorded = 0;
  for (const Entry& entry : entries) recorded += record(entry.key, kind_of(entry), entry.reply, now);
  return recorded;
}

bool HandledStore::record(std::string_view key, HandledRecord::Kind kind, const std::string* reply,
                          std::chrono::system_clock::time_point now) {
  if (env_ == nullptr || key.empty()) return false;
  int rc = 0;
  for (int attempt = 0; attempt < 2; ++attempt) {
    {
      TxnGuard txn;
      rc = mdb_txn_begin(env_, nullptr, 0, &txn.txn);
      if (rc == 0) rc = put(txn.txn, key, kind, reply, unix_ms(now), kPrunePerRecord);
      if (rc == 0) rc = txn.commit();
    }
    if (rc != MDB_MAP_FULL) break;
    make_room();
  }
  if (rc != 0) {
    SBUS_LOG_LIMITED(kError, "handled store")
        << "handled store " << options_.dir << ": cannot record a handled id: " << mdb_strerror(rc)
        << "; the delivery may be handled again";
    return false;
  }
  return true;
}

std::uint64_t HandledStore::prune(MDB_txn* txn, std::int64_t now_ms, std::uint64_t budget, bool force) {
  MDB_stat stat{};
  if (mdb_stat(txn, order_, &stat) != 0) return 0;
  std::uint64_t entries = stat.ms_entries;
  const std::int64_t oldest_kept =
      now_ms - std::chrono::duration_cast<std::chrono::milliseconds>(options_.keep).count();
  MDB_cursor* cursor = nullptr;
  if (mdb_cursor_open(txn, order_, &cursor) != 0) return 0;
  std::uint64_t deleted = 0;
  MDB_val key;
  MDB_val value;
  while (deleted < budget && mdb_cursor_get(cursor, &key, &value, MDB_FIRST) == 0 && value.mv_size >= kStamp) {
    const auto at = static_cast<std::int64_t>(get_stamp(view(value).data()));
    if (!force && entries <= options_.max_ids && at >= oldest_kept) break;
    MDB_val id = val(view(value).substr(kStamp));
    mdb_del(txn, ids_, &id, nullptr);
    if (mdb_cursor_del(cursor, 0) != 0) break;
    --entries;
    ++deleted;
  }
  mdb_cursor_close(cursor);
  return deleted;
}

// The bytes of the pages the two tables hold (live pages, not the free
// ones LMDB reuses), and the ids held.
std::uint64_t HandledStore::used_bytes(MDB_txn* txn, std::uint64_t* held) {
  std::uint64_t pages = 0;
  for (MDB_dbi dbi : {ids_, order_}) {
    MDB_stat stat{};
    if (mdb_stat(txn, dbi, &stat) != 0) continue;
    pages += stat.ms_branch_pages + stat.ms_leaf_pages + stat.ms_overflow_pages;
    if (dbi == order_) *held = stat.ms_entries;
  }
  MDB_stat env_stat{};
  mdb_env_stat(env_, &env_stat);
  return pages * env_stat.ms_psize;
}

// The map is full: the oldest eighth of the ids goes, whatever its age.
void HandledStore::make_room() {
  TxnGuard txn;
  if (mdb_txn_begin(env_, nullptr, 0, &txn.txn) != 0) return;
  MDB_stat stat{};
  const std::uint64_t held = mdb_stat(txn.txn, order_, &stat) == 0 ? stat.ms_entries : 0;
  const std::uint64_t deleted = prune(txn.txn, 0, std::max<std::uint64_t>(1, held / 8), true);
  const int rc = txn.commit();
  SBUS_LOG_LIMITED(kWarn, "handled store full")
      << "handled store " << options_.dir << " is full (handled_max_bytes " << options_.max_bytes << "): forgot the "
      << deleted << " oldest of " << held << " ids" << (rc != 0 ? std::string(": ") + mdb_strerror(rc) : "");
}

void HandledStore::sync(std::chrono::system_clock::time_point now) {
  struct stat st {};
  if (env_ != nullptr && ::stat(file().c_str(), &st) == 0 && st.st_ino != inode_) {
    SBUS_LOG(kWarn) << "handled store " << file() << " was replaced (moved aside by another worker): reopening it";
    close_env();
  }
  if (env_ == nullptr) {
    try {
      std::string warning;
      open_env(&warning);
      if (!warning.empty()) SBUS_LOG(kWarn) << warning;
    } catch (const StoreError& e) {
      SBUS_LOG_LIMITED(kError, "handled store") << e.what();
      return;
    }
  }
  TxnGuard txn;
  if (mdb_txn_begin(env_, nullptr, 0, &txn.txn) == 0) {
    prune(txn.txn, unix_ms(now), kPrunePerSync, false);
    txn.commit();
  }
  mdb_env_sync(env_, 1);
  release_map();
}

void HandledStore::release_map() {
  MDB_envinfo info{};
  MDB_stat stat{};
  if (map_ == nullptr || mdb_env_info(env_, &info) != 0 || mdb_env_stat(env_, &stat) != 0) return;
  // map_ stays LMDB's map for the environment's life: LMDB maps the file
  // again only in mdb_env_set_mapsize(), which the store calls before
  // mdb_env_open() alone. Up to the last page in use: the map
  // (handled_max_bytes) may be far larger than the file.
  const std::size_t used = std::min<std::size_t>((info.me_last_pgno + 1) * std::size_t{stat.ms_psize}, map_bytes_);
  ::madvise(map_, used, MADV_DONTNEED);
}

std::uint64_t HandledStore::size() {
  if (env_ == nullptr) return 0;
  MDB_stat stat{};
  MDB_txn* txn = nullptr;
  if (mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn) != 0) return 0;
  const int rc = mdb_stat(txn, order_, &stat);
  mdb_txn_abort(txn);
  return rc == 0 ? stat.ms_entries : 0;
}

}  // namespace sbus
