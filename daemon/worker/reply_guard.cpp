#include "worker/reply_guard.hpp"

#include <functional>

#include "worker/reply_address.hpp"

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

ReplyGuard::Route ReplyGuard::route_reply(std::string_view reply_to, std::uint64_t address, Caller caller) const {
  const Route known = route(address);
  if (known != Route::kDirect || !is_direct_reply_to(reply_to)) return known;
  if (caller == Caller::kUnauthenticated) return Route::kQuarantine;
  const std::optional<std::string> node = direct_reply_node(reply_to);
  return node && proven_nodes_.count(*node) != 0 ? Route::kDirect : Route::kQuarantine;
}

void ReplyGuard::alive(std::uint64_t address, std::string_view reply_to) {
  alive(address);
  std::optional<std::string> node = direct_reply_node(reply_to);
  if (!node) return;
  if (proven_nodes_.size() >= kMaxNodes) proven_nodes_.clear();
  proven_nodes_.insert(std::move(*node));
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
