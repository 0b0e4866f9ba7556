// Replies of calls that finished after their connection was lost, kept for
// their redelivery: the broker requeues the unacked call, and the reply
// kept for it is sent instead of running it again. Bounded: past
// kUnsentReplies the oldest is forgotten (its call is then answered
// `interrupted`, or run again if idempotent).
//
// Owned by the BrokerSession, under its lock. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

namespace sbus {

class UnsentReplies {
 public:
  static constexpr std::size_t kUnsentReplies = 1024;

  // Keeps `body` for the call of CrashJournal::key `key` (0: nothing kept).
  void keep(std::uint64_t key, std::string body);
  // The reply kept for `key`, or null.
  const std::string* find(std::uint64_t key) const;
  // Takes the reply kept for `key` (empty when none).
  std::string take(std::uint64_t key);

 private:
  std::unordered_map<std::uint64_t, std::string> replies_;  // by CrashJournal::key
  std::deque<std::uint64_t> order_;                         // oldest first
};

}  // namespace sbus
