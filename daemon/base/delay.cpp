#include "base/delay.hpp"

#include <time.h>

#include <cctype>
#include <charconv>

namespace sbus {
namespace {

using std::chrono::milliseconds;

std::string too_long_text() {
  return "the longest delay is " + std::to_string(kMaxDelay.count() / 1000) + " s (about 497 days)";
}

// The number of milliseconds in one `unit`; 0 when it is none of ours.
std::int64_t unit_ms(std::string_view unit) {
  if (unit == "ms") return 1;
  if (unit == "s") return 1000;
  if (unit == "m") return 60 * 1000;
  if (unit == "h") return 3600 * 1000;
  if (unit == "d") return 86400 * 1000;
  return 0;
}

// Reads `count` digits of `text` at *at into *value.
bool digits(std::string_view text, std::size_t* at, std::size_t count, int* value) {
  if (*at + count > text.size()) return false;
  const char* first = text.data() + *at;
  const auto [end, ec] = std::from_chars(first, first + count, *value);
  if (ec != std::errc() || end != first + count) return false;
  *at += count;
  return true;
}

}  // namespace

std::string delay_too_long_text() {
  return too_long_text();
}

std::optional<milliseconds> parse_delay(std::string_view text, std::string* error) {
  const std::string quoted = "'" + std::string(text) + "'";
  if (!text.empty() && text.front() == '-') {
    *error = "a delay cannot be negative: " + quoted;
    return std::nullopt;
  }
  std::int64_t total = 0;
  std::size_t at = 0;
  if (text.empty()) {
    *error = "a delay is a number and a unit (ms, s, m, h, d), as 90s, 250ms or 1h30m: ''";
    return std::nullopt;
  }
  while (at < text.size()) {
    std::int64_t number = 0;
    const auto [end, ec] = std::from_chars(text.data() + at, text.data() + text.size(), number);
    const std::size_t unit_at = static_cast<std::size_t>(end - text.data());
    std::size_t unit_end = unit_at;
    while (unit_end < text.size() && std::isalpha(static_cast<unsigned char>(text[unit_end]))) ++unit_end;
    const std::int64_t per_unit = unit_ms(text.substr(unit_at, unit_end - unit_at));
    if (ec == std::errc::result_out_of_range) {
      *error = "a delay of " + quoted + " is too long: " + too_long_text();
      return std::nullopt;
    }
    if (ec != std::errc() || per_unit == 0 || number < 0) {
      *error = "a delay is a number and a unit (ms, s, m, h, d), as 90s, 250ms or 1h30m: " + quoted;
      return std::nullopt;
    }
    if (number > kMaxDelay.count() / per_unit || total + number * per_unit > kMaxDelay.count()) {
      *error = "a delay of " + quoted + " is too long: " + too_long_text();
      return std::nullopt;
    }
    total += number * per_unit;
    at = unit_end;
  }
  if (total == 0) {
    *error = "a delay must be positive: " + quoted + " (send without a delay instead)";
    return std::nullopt;
  }
  return milliseconds(total);
}

// RFC 3339 section 5.6: full-date "T" full-time, the T and Z of either case.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text, std::string* error) {
  *error = "not an RFC 3339 time (as 2026-12-24T18:00:00Z): '" + std::string(text) + "'";
  tm fields{};
  std::size_t at = 0;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  const auto separator = [&](std::string_view allowed) {
    if (at >= text.size() || allowed.find(text[at]) == std::string_view::npos) return false;
    ++at;
    return true;
  };
  if (!digits(text, &at, 4, &year) || !separator("-") || !digits(text, &at, 2, &month) || !separator("-") ||
      !digits(text, &at, 2, &day) || !separator("Tt") || !digits(text, &at, 2, &hour) || !separator(":") ||
      !digits(text, &at, 2, &minute) || !separator(":") || !digits(text, &at, 2, &second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  milliseconds fraction{0};
  if (at < text.size() && text[at] == '.') {
    ++at;
    int scale = 100;
    const std::size_t first = at;
    for (; at < text.size() && std::isdigit(static_cast<unsigned char>(text[at])); ++at) {
      fraction += milliseconds((text[at] - '0') * scale);
      scale /= 10;
    }
    if (at == first) return std::nullopt;
  }
  int offset_minutes = 0;
  if (separator("Zz")) {
  } else if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
    const int sign = text[at] == '-' ? -1 : 1;
    ++at;
    int offset_hours = 0, offset_mins = 0;
    if (!digits(text, &at, 2, &offset_hours) || !separator(":") || !digits(text, &at, 2, &offset_mins) ||
        offset_hours > 23 || offset_mins > 59) {
      return std::nullopt;
    }
    offset_minutes = sign * (offset_hours * 60 + offset_mins);
  } else {
    return std::nullopt;
  }
  if (at != text.size()) return std::nullopt;
  fields.tm_year = year - 1900;
  fields.tm_mon = month - 1;
  fields.tm_mday = day;
  fields.tm_hour = hour;
  fields.tm_min = minute;
  fields.tm_sec = second;
  const time_t seconds = timegm(&fields);
  // timegm normalises 2026-02-31 into March: such a date is no date.
  if (fields.tm_mday != day || fields.tm_mon != month - 1) return std::nullopt;
  error->clear();
  return std::chrono::system_clock::from_time_t(seconds) + fraction - std::chrono::minutes(offset_minutes);
}

std::optional<milliseconds> delay_until(std::chrono::system_clock::time_point due,
                                        std::chrono::system_clock::time_point now, std::string* error) {
  // Rounded up: never early.
  const auto left = std::chrono::ceil<milliseconds>(due - now);
  if (left.count() <= 0) {
    *error = "the time is " + std::to_string(-left.count()) + " ms in the past";
    return std::nullopt;
  }
  if (left > kMaxDelay) {
    *error = "the time is too far ahead: " + too_long_text();
    return std::nullopt;
  }
  return left;
}

}  // namespace sbus
