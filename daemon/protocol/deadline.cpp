#include "protocol/deadline.hpp"

#include <charconv>

namespace sbus {

Deadline read_deadline(std::optional<std::string_view> header, std::chrono::system_clock::time_point now,
                       std::chrono::seconds max_skew) {
  using std::chrono::milliseconds;
  Deadline deadline;
  if (!header) return deadline;

  // More digits than 16 cannot be a time anyone waits for (13 reach the year
  // 2286), and 16 never overflow.
  std::int64_t unix_ms = 0;
  const char* end = header->data() + header->size();
  const auto [stop, error] = std::from_chars(header->data(), end, unix_ms);
  if (header->empty() || header->size() > 16 || error != std::errc() || stop != end || (*header)[0] == '-' ||
      (*header)[0] == '+') {
    deadline.problem = "malformed " + std::string(kDeadlineHeader) + " header (not Unix milliseconds): ignored";
    return deadline;
  }

  const std::chrono::system_clock::time_point at{milliseconds(unix_ms)};
  if (at > now + kMaxDeadlineAhead + max_skew) {
    deadline.problem = std::string(kDeadlineHeader) + " more than " + std::to_string(kMaxDeadlineAhead.count()) +
                       " h ahead of this agent's clock: ignored";
    return deadline;
  }
  deadline.at = at;
  if (at > now) {
    deadline.state = Deadline::State::kLive;
    return deadline;
  }
  deadline.state = Deadline::State::kExpired;
  if (now - at > max_skew) {
    const auto behind = std::chrono::duration_cast<std::chrono::seconds>(now - at).count();
    deadline.problem = "the deadline passed " + std::to_string(behind) +
                       " s before this agent's clock, more than max_skew: is the sender's clock right?";
  }
  return deadline;
}

std::string deadline_header_value(std::chrono::system_clock::time_point at) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count());
}

std::string expiration_for(std::chrono::milliseconds left) {
  return std::to_string(left.count() < 1 ? 1 : left.count());
}

}  // namespace sbus
