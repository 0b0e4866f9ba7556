#include "worker/unsent_replies.hpp"

#include <utility>

namespace sbus {

void UnsentReplies::keep(std::uint64_t key, std::string body) {
  if (key == 0) return;
  if (replies_.size() >= kUnsentReplies) {
    replies_.erase(order_.front());
    order_.pop_front();
  }
  if (replies_.insert_or_assign(key, std::move(body)).second) order_.push_back(key);
}

const std::string* UnsentReplies::find(std::uint64_t key) const {
  const auto found = replies_.find(key);
  return found != replies_.end() ? &found->second : nullptr;
}

// Its key stays in order_ until it comes round: erasing a key replies_ no
// longer holds costs nothing.
std::string UnsentReplies::take(std::uint64_t key) {
  const auto found = replies_.find(key);
  if (found == replies_.end()) return {};
  std::string body = std::move(found->second);
  replies_.erase(found);
  return body;
}

}  // namespace sbus
