// One delivery as the reader read it (BrokerSession::read_one()), for
// Admission. Valid until the reader reads the next frame: `body` and
// `properties` point into the session's buffers.
#pragma once

#include <amqp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "worker/envelope.hpp"

namespace sbus {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Delivery {
  Envelope envelope;  // its kind, tag, generation, reply_to and correlation id
  bool redelivered = false;
  std::string_view body;
  // As text (text_headers()): read for messages, and for a body too large.
  Headers headers;
  // The delivery's properties; null for a body too large, whose properties
  // went with the frames skipped, and in tests.
  const amqp_basic_properties_t* properties = nullptr;
  // The value of its x-sbus-deadline header as text (protocol/deadline.hpp);
  // nullopt: none.
  std::optional<std::string> deadline;
  // An event: the CATEGORY.SERVICE whose queue it came from (or that its
  // x-sbus-event header names). Empty otherwise.
  std::string event_service;
  // A body over max_message_bytes: its size. The body was dropped unread.
  std::uint64_t too_large = 0;
};

// The headers of a delivery whose values are text or numbers, as text: what
// the error queue keeps of them.
Headers text_headers(const amqp_basic_properties_t& props);

// The value of header `key`, as text_headers() writes it; nullopt when the
// delivery has no such header of a text or number type.
std::optional<std::string> text_header(const amqp_basic_properties_t& props, std::string_view key);

}  // namespace sbus
