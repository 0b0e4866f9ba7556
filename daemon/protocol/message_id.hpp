// Message ids (docs/reliability.md#handled-once): what a sender puts in the
// AMQP property message_id of each call, message and event, and what a
// worker accepts there. py-servicebus sets none.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sbus {

// The longest id a worker takes, in bytes (an AMQP shortstr holds 255).
inline constexpr std::size_t kMaxMessageIdBytes = 128;

// Why `id` cannot be a message id ("message id is 300 bytes, over 128"),
// or empty when it can: 1 to kMaxMessageIdBytes bytes of valid UTF-8
// without control characters.
std::string message_id_problem(std::string_view id);

// A fresh id: 128 random bits (getrandom()) as 32 hex digits, then "-" and
// `counter`, so that one random draw per sender serves many ids.
std::string fresh_message_id_prefix();

}  // namespace sbus
