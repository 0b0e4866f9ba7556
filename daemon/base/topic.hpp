// Event topics and the patterns that subscribe to them (docs/protocol.md,
// "Events"). A topic is dot-separated words, as a RabbitMQ topic exchange
// routes them: `orders.created`, `audit.login.failed`. A pattern is a topic
// whose words may also be `*` (exactly one word) or `#` (zero or more).
//
// Pure functions, any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sbus {

// The longest topic or pattern: an AMQP routing key is a short string.
inline constexpr std::size_t kMaxTopicBytes = 255;

// Why `topic` cannot be published to: empty when it is a topic. Each word
// is one or more of the letters, digits, `_` and `-` (so neither `*` nor
// `#`, which only patterns hold).
std::string topic_problem(std::string_view topic);

// Why `pattern` cannot subscribe: empty when it is a pattern. As a topic,
// and a word may be `*` or `#` alone (RabbitMQ would take `ord*` as the
// literal word, never matching what was meant).
std::string topic_pattern_problem(std::string_view pattern);

// Whether `topic` matches `pattern` as a RabbitMQ topic exchange matches a
// routing key against a binding key.
bool topic_matches(std::string_view pattern, std::string_view topic);

}  // namespace sbus
