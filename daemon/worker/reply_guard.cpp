#include "worker/reply_guard.hpp"

#include <functional>

namespace sbus {

std::uint64_t ReplyGuard::address(std::string_view reply_to) {
  const std::uint64_t hash = std::hash<std::string_view>{}(reply_to);
  return hash == 0 ? 1 : hash;  // 0 marks an empty slot of the ring
}

ReplyGuard::Route ReplyGuard::route(std::uint64_t address) const {
  if (!dead_.empty() && dead_.count(address) != 0) return Route::kDrop;
  if (!suspects_.empty() && suspects_.count(address) != 0) return Route::kQuarantine;
  return Route::kDirect;
}

void ReplyGuard::sent(std::uint64_t address, Clock::time_point now) {
  recent_[next_++ % kRecent] = {now, address};
}

std::size_t ReplyGuard::delivery_failed(Clock::time_point now) {
  if (suspects_.size() >= kMaxAddresses) suspects_.clear();
  std::size_t added = 0;
  for (const Sent& sent : recent_) {
    if (sent.address != 0 && sent.at >= now - kWindow && dead_.count(sent.address) == 0) {
      added += suspects_.insert(sent.address).second;
    }
  }
  return added;
}

void ReplyGuard::dead(std::uint64_t address) {
  suspects_.erase(address);
  if (dead_.size() >= kMaxAddresses) dead_.clear();
  dead_.insert(address);
}

}  // namespace sbus
