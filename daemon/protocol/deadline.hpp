// A call's deadline on the wire, and how an agent reads one it did not set.
//
// A sender puts the time by which it stops waiting into the header
// `x-sbus-deadline` of the call, as Unix time in milliseconds written in
// decimal ("1796601600123"), and tells the broker the same through the
// message's `expiration` (the time left, in milliseconds). The broker drops
// an expired message only when it reaches the head of its queue, and
// dead-lettering strips the expiration, so the header is what an agent
// trusts. py-servicebus senders send no deadline.
//
// The rule for a header an agent reads (docs/reliability.md):
//   - absent: no deadline;
//   - not 1 to 16 decimal digits: no deadline, and the problem is named;
//   - at or before now: expired (answered `deadline_exceeded`); a deadline
//     more than max_skew in the past is named as a sender's clock problem;
//   - more than kMaxDeadlineAhead plus max_skew after now: no deadline, and
//     the problem is named (no caller waits that long).
// Pure: the caller passes the clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sbus {

inline constexpr std::string_view kDeadlineHeader = "x-sbus-deadline";
// The furthest ahead a deadline may be and still be taken.
inline constexpr std::chrono::hours kMaxDeadlineAhead{24};

struct Deadline {
  enum class State { kNone, kLive, kExpired };
  State state = State::kNone;
  // When the sender stops waiting; set for kLive and kExpired.
  std::chrono::system_clock::time_point at{};
  // Why a header was not taken as it stands, for the log or the error
  // reply; empty when it was.
  std::string problem;

  bool live() const { return state == State::kLive; }
  bool expired() const { return state == State::kExpired; }
};

// Reads the value of an x-sbus-deadline header (std::nullopt: no header).
Deadline read_deadline(std::optional<std::string_view> header, std::chrono::system_clock::time_point now,
                       std::chrono::seconds max_skew);

// The header's value for a deadline.
std::string deadline_header_value(std::chrono::system_clock::time_point at);

// The message expiration (AMQP `expiration`, milliseconds as decimal text)
// for a deadline `left` from now: at least 1, as 0 would make the broker
// drop a message that is not yet due.
std::string expiration_for(std::chrono::milliseconds left);

}  // namespace sbus
