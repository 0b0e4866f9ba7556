// HandledStore: the message ids a node has handled, and the replies of its
// calls (docs/reliability.md#handled-once), in an LMDB environment under
// state_dir that every worker of one sbusd opens: LMDB is safe across
// processes, and a worker killed mid-write leaves it whole.
//
// Each worker process opens its own (open(), after the fork: an LMDB
// environment must not cross a fork) and uses it with the broker session's
// lock held: one thread at a time, any thread (MDB_NOTLS). Records are
// written without an fsync each (MDB_NOSYNC) and synced by sync(), which
// the connection thread calls about once a second: a killed process loses
// nothing, a power loss at most the last second of records (those
// messages are then handled at least once, as without the store).
//
// Bounded: at most `max_ids` ids younger than `keep` (the oldest go first,
// a few with each record and more at each sync()), replies over
// `max_reply_bytes` are not kept (only that the call was handled), and the
// file never outgrows `max_bytes` (LMDB's map size): when it is full, the
// oldest eighth of the ids makes room.
#pragma once

#include <lmdb.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"

namespace sbus {

// A store that cannot be opened: the message names its folder and the
// reason (permissions, a full disk, the library's own words).
class StoreError : public Error {
 public:
  using Error::Error;
};

struct HandledStoreOptions {
  std::string dir;  // the environment's folder, created when missing
  std::chrono::seconds keep{7 * 24 * 3600};
  std::uint64_t max_ids = 1000000;
  std::size_t max_reply_bytes = 64 * 1024;
  std::uint64_t max_bytes = 1ULL << 30;
  // Move a corrupted file aside and start anew; false: throw StoreError
  // saying it is corrupted, and change nothing.
  bool repair = true;
};

struct Config;
// The store's options from `config`: STATE_DIR/handled and the handled_* keys.
HandledStoreOptions handled_store_options(const Config& config);

// What the store knows of an id.
struct HandledRecord {
  // kReplyLost: a call whose handler returned in a worker killed before
  // its reply was kept (CrashJournal::returned()).
  enum class Kind : std::uint8_t { kMessage = 0, kReply = 1, kReplyNotKept = 2, kReplyLost = 3 };
  Kind kind = Kind::kMessage;
  std::string reply;  // kReply: the reply's body as it was sent
};

class HandledStore {
 public:
  // Opens or creates the store in options.dir. A file that is not a valid
  // LMDB environment (corrupted, truncated, another program's) is moved
  // aside as data.mdb.corrupt-UNIXTIME and the store created anew; then
  // *warning says so (else it is left empty). Throws StoreError naming the
  // folder and the reason when it cannot be opened at all.
  static std::unique_ptr<HandledStore> open(const HandledStoreOptions& options, std::string* warning);
  ~HandledStore();
  HandledStore(const HandledStore&) = delete;
  HandledStore& operator=(const HandledStore&) = delete;

  // The key of an id: per service and caller, so that one caller's
  // idempotency key neither reaches another's reply nor another service.
  // Empty when it would be over LMDB's key limit (then the id is not kept).
  static std::string key(std::string_view service, std::string_view caller, std::string_view message_id);

  // What was recorded for `key`, or nullopt (never recorded, forgotten, or
  // the store failed: that is logged and the delivery handled as new).
  std::optional<HandledRecord> find(std::string_view key);

  // Records `key` as handled at `now`, with a call's `reply` (nullptr for a
  // message). True when it is recorded (or was already); false, with the
  // reason logged, when the store failed (a full disk): the delivery is
  // then handled at least once.
  bool record(std::string_view key, const std::string* reply, std::chrono::system_clock::time_point now);
  // The same, for a record of `kind` (kMessage and kReplyLost take no reply).
  bool record(std::string_view key, HandledRecord::Kind kind, const std::string* reply,
              std::chrono::system_clock::time_point now);

  // One id to record (a call's `reply`, or nullptr and `kind`: a message,
  // or a call whose reply is not kept).
  struct Entry {
    std::string_view key;
    const std::string* reply = nullptr;
    HandledRecord::Kind kind = HandledRecord::Kind::kMessage;
  };
  // Records every entry in one transaction: one commit for a run of
  // deliveries, as record() makes one for each. When that transaction
  // fails (a full map), each is recorded on its own, as record() does.
  // How many are recorded.
  std::size_t record_all(const std::vector<Entry>& entries, std::chrono::system_clock::time_point now);

  // Whether a call's reply of `size` bytes is kept with its id (else its
  // record says kReplyNotKept).
  bool keeps_reply(std::size_t size) const {
    return size <= options_.max_reply_bytes && size <= options_.max_bytes / 16;
  }

  // Forgets what is past `keep` or over `max_ids` and flushes the records
  // to disk, then unmaps the pages of the file this process has read
  // (release_map()). Reopens the store when another worker moved its file
  // aside.
  void sync(std::chrono::system_clock::time_point now);

  // Ids held now.
  std::uint64_t size();
  const std::string& dir() const { return options_.dir; }

 private:
  explicit HandledStore(HandledStoreOptions options) : options_(std::move(options)) {}
  void open_env(std::string* warning);
  int try_open();
  void reserve_lock_file();
  void close_env();
  // Every page of the file a lookup or a write has read stays mapped in
  // this process, and counted in its RSS, until unmapped: with ids of
  // random order that is most of the file after a while (11 MB after
  // 25,000 calls). The pages go out of this process's page tables only
  // (MADV_DONTNEED on a shared, read-only file map; the page cache keeps
  // them and the file is untouched); a later read maps those it needs again.
  void release_map();
  // Deletes up to `budget` of the oldest ids: those past keep or over
  // max_ids, or, with `force`, any. Returns how many it deleted.
  std::uint64_t prune(MDB_txn* txn, std::int64_t now_ms, std::uint64_t budget, bool force);
  int put(MDB_txn* txn, std::string_view key, HandledRecord::Kind kind, const std::string* reply, std::int64_t now_ms,
          std::size_t prune_budget);
  void make_room();
  std::uint64_t used_bytes(MDB_txn* txn, std::uint64_t* held);
  std::string file() const { return options_.dir + "/data.mdb"; }

  HandledStoreOptions options_;
  MDB_env* env_ = nullptr;
  MDB_dbi ids_ = 0;            // key -> [time ms][kind][reply]
  MDB_dbi order_ = 0;          // big-endian sequence -> [time ms][key]
  MDB_txn* reader_ = nullptr;  // reset between finds, renewed for each
  std::uint64_t inode_ = 0;    // of data.mdb when opened
  void* map_ = nullptr;        // LMDB's map of data.mdb (release_map()), when found
  std::size_t map_bytes_ = 0;
};

}  // namespace sbus
