#include "worker/deferred_records.hpp"

#include <utility>

namespace sbus {

void DeferredRecords::add(Entry entry, Clock::time_point now) {
  if (entries_.empty()) deadline_ = now + window_;
  entries_.push_back(std::move(entry));
}

// A linear search: at most kCapacity keys, most often none or one.
std::optional<HandledRecord> DeferredRecords::find(std::string_view key) const {
  for (const Entry& entry : entries_) {
    if (entry.key == key) return entry.record;
  }
  return std::nullopt;
}

std::vector<DeferredRecords::Entry> DeferredRecords::take() {
  std::vector<Entry> taken;
  taken.swap(entries_);
  return taken;
}

}  // namespace sbus
