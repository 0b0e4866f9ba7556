#include "worker/ack_tracker.hpp"

#include <algorithm>

namespace sbus {

AckTracker::Entry* AckTracker::find(std::uint64_t tag) {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), tag,
                             [](const Entry& entry, std::uint64_t t) { return entry.tag < t; });
  return it != entries_.end() && it->tag == tag ? &*it : nullptr;
}

void AckTracker::track(std::uint64_t tag, bool handled) {
  entries_.push_back({tag, handled ? State::kOpen : State::kLeft});
}

void AckTracker::ack(std::uint64_t tag) {
  if (Entry* entry = find(tag)) entry->state = State::kAcked;
}

bool AckTracker::reject(std::uint64_t tag) {
  Entry* entry = find(tag);
  if (entry == nullptr) return false;
  entry->state = State::kRejected;
  return true;
}

void AckTracker::leave(std::uint64_t tag) {
  if (Entry* entry = find(tag)) entry->state = State::kLeft;
}

std::vector<AckTracker::Ack> AckTracker::take_due() {
  std::vector<Ack> due;
  std::uint64_t upto = 0;
  while (!entries_.empty() && (entries_.front().state == State::kAcked || entries_.front().state == State::kRejected)) {
    if (entries_.front().state == State::kAcked) upto = entries_.front().tag;
    entries_.pop_front();
  }
  if (upto != 0) due.push_back({upto, true});
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->state == State::kAcked) {
      due.push_back({it->tag, false});
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  return due;
}

}  // namespace sbus
