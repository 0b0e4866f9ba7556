#include <cstdlib>
#include <cstring>

#include "base/metrics_entry.hpp"

namespace sbus {

namespace {

constexpr std::uint32_t kMagic = 0x53424d53;  // "SBMS"
constexpr std::size_t kHeaderFields = 6;      // magic, two statuses, three lengths

void put(std::string* out, std::uint32_t value) {
  out->append(reinterpret_cast<const char*>(&value), sizeof(value));
}

}  // namespace

std::string encode_snapshot(const MetricsSnapshot& snapshot) {
  std::string out;
  out.reserve(kHeaderFields * 4 + snapshot.health.size() + snapshot.ready.size() + snapshot.metrics.size());
  put(&out, kMagic);
  put(&out, static_cast<std::uint32_t>(snapshot.health_status));
  put(&out, static_cast<std::uint32_t>(snapshot.ready_status));
  put(&out, static_cast<std::uint32_t>(snapshot.health.size()));
  put(&out, static_cast<std::uint32_t>(snapshot.ready.size()));
  put(&out, static_cast<std::uint32_t>(snapshot.metrics.size()));
  out += snapshot.health;
  out += snapshot.ready;
  out += snapshot.metrics;
  return out;
}

std::optional<MetricsSnapshot> SnapshotReader::next() {
  if (buffer_.size() < kHeaderFields * 4) return std::nullopt;
  std::uint32_t header[kHeaderFields];
  std::memcpy(header, buffer_.data(), sizeof(header));
  if (header[0] != kMagic) std::abort();  // both ends are the same build: a broken invariant
  const std::size_t total = sizeof(header) + std::size_t{header[3]} + header[4] + header[5];
  if (buffer_.size() < total) return std::nullopt;
  MetricsSnapshot snapshot;
  snapshot.health_status = static_cast<int>(header[1]);
  snapshot.ready_status = static_cast<int>(header[2]);
  std::size_t at = sizeof(header);
  snapshot.health = buffer_.substr(at, header[3]);
  at += header[3];
  snapshot.ready = buffer_.substr(at, header[4]);
  at += header[4];
  snapshot.metrics = buffer_.substr(at, header[5]);
  buffer_.erase(0, total);
  return snapshot;
}

}  // namespace sbus
