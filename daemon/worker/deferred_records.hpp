// DeferredRecords: the records of handled message ids that were acked
// before their commit (docs/reliability.md#handled-once, group commit).
// A delivery whose handler returned with a crash-journal mark is answered
// and acked at once; its record waits here, in memory, to be committed
// with others in one LMDB transaction, at most `window` after the first of
// them, or as soon as `capacity` wait. Until then the mark stays set: a
// kill of the worker leaves it to the supervisor's ring of returned keys,
// as a kill between the return and the record always did. Admission looks
// here before the store (find()), so a copy of the delivery in the window
// is a duplicate and gets the kept reply.
//
// The worker's, used with the broker session's lock held.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "worker/handled_store.hpp"

namespace sbus {

class DeferredRecords {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kCapacity = 32;

  struct Entry {
    std::string key;
    HandledRecord record;  // kReply holds the reply; kReplyNotKept and kMessage none
    int mark = -1;         // the crash journal's mark of its return
  };

  // `window`: how long a record may wait; zero: none waits (enabled() is
  // false, every record is committed before its ack).
  explicit DeferredRecords(std::chrono::milliseconds window = std::chrono::milliseconds{0}) : window_(window) {}

  bool enabled() const { return window_.count() > 0; }
  bool empty() const { return entries_.empty(); }
  bool full() const { return entries_.size() >= kCapacity; }
  std::size_t size() const { return entries_.size(); }
  // When the first waiting record must be committed (meaningless when empty()).
  Clock::time_point deadline() const { return deadline_; }
  bool due(Clock::time_point now) const { return !entries_.empty() && now >= deadline_; }

  // Keeps a record until take(); the first of a run starts the window.
  void add(Entry entry, Clock::time_point now);
  // The record kept for `key`, or nullopt.
  std::optional<HandledRecord> find(std::string_view key) const;
  // Every kept record, oldest first; empty() after.
  std::vector<Entry> take();

 private:
  std::chrono::milliseconds window_;
  std::vector<Entry> entries_;
  Clock::time_point deadline_{};
};

}  // namespace sbus
