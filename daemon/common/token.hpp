// The py-servicebus token ("compat" mode): hex(SHA-1(SECRET " - " DATE)),
// DATE the sender's local date as YYYY-MM-DD. The receiver accepts the
// tokens of yesterday, today and tomorrow by its own local date.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace sbus {

std::string compat_token(std::string_view secret, std::string_view date);

// The local date of `when` shifted by `day_offset` days, as YYYY-MM-DD.
std::string local_date(std::chrono::system_clock::time_point when, int day_offset = 0);

// Constant-time check of `token` against the tokens of the three days
// around `now`.
bool compat_token_valid(std::string_view secret, std::string_view token,
                        std::chrono::system_clock::time_point now);

}  // namespace sbus
