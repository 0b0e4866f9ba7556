// Events on the wire (docs/protocol.md, "Events"): a published event is the
// message event of py-servicebus (wire_codec.hpp), with the category
// kEventCategory and the topic as its service, published persistent to the
// events exchange (a durable topic exchange of sbus's own) with the topic as
// its routing key. So the agent decodes it with decode_event(), and an hmac
// token covers the topic. An hmac-sha256-v2 token is signed for the events
// exchange's name in place of a node.
#pragma once

#include <string_view>

namespace sbus {

inline constexpr std::string_view kEventCategory = "event";

// On an event that left its service's queue (moved to the hold queue, or to
// the error queue and requeued from there to the node queue): the
// CATEGORY.SERVICE it is for, so that it comes back as that service's event.
inline constexpr std::string_view kEventServiceHeader = "x-sbus-event";

}  // namespace sbus
