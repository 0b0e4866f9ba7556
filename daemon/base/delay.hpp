// Delays of deferred delivery as a sender is given them: the unit and the
// longest delay (protocol/deferral.hpp has the design), a delay and a time
// as written on a command line, and the delay until a time. Pure: the
// caller passes the clock. Shared by the sender library and the sbus CLI,
// which check a delay before anything is sent.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sbus {

// A delay is counted in units of 10 ms, rounded up, in 32 bits.
inline constexpr std::chrono::milliseconds kDelayUnit{10};
inline constexpr int kDelayLevels = 32;
// 2^32 - 1 units: 42,949,672,950 ms, about 497 days.
inline constexpr std::chrono::milliseconds kMaxDelay{((std::int64_t{1} << kDelayLevels) - 1) * kDelayUnit.count()};

// A delay as written on a command line: one or more NUMBER UNIT pairs, the
// unit ms, s, m, h or d ("250ms", "90s", "2h", "1d", "1h30m"). Nullopt with
// *error when it is not one, or is not positive, or is beyond kMaxDelay.
std::optional<std::chrono::milliseconds> parse_delay(std::string_view text, std::string* error);

// "the longest delay is ... s (about 497 days)": part of the refusals.
std::string delay_too_long_text();

// An RFC 3339 time ("2026-12-24T18:00:00Z", "2026-12-24T19:00:00.250+01:00").
// Nullopt with *error when it is not one.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text, std::string* error);

// The delay until `due` from `now`; nullopt with *error when `due` is not
// after `now` or is beyond kMaxDelay.
std::optional<std::chrono::milliseconds> delay_until(std::chrono::system_clock::time_point due,
                                                     std::chrono::system_clock::time_point now, std::string* error);

}  // namespace sbus
