// Sender::Impl: events, published to the events exchange with confirms
// (docs/protocol.md, "Events").
#include "base/topic.hpp"
#include "client/sender_impl.hpp"
#include "protocol/event_wire.hpp"

namespace sbus {

Event Sender::Impl::new_event(std::string_view topic, std::string_view params_json) {
  Event event;
  event.category = kEventCategory;
  event.service = topic;
  event.params = params_json;
  connect();
  if (fail_over_on_block && connection.blocked()) lost(blocked_text(), SenderError::Kind::kBlocked);
  event.id = next_event_id();
  return event;
}

bool Sender::Impl::publish_event(std::string_view topic, std::string_view params_json, const WireDeadline* deadline,
                                 bool wait, std::string* id) {
  if (const std::string problem = topic_problem(topic); !problem.empty()) {
    throw SenderError(SenderError::Kind::kAddress, problem);
  }
  Event event = new_event(topic, params_json);
  // An hmac-sha256-v2 token names the events exchange in place of a node.
  event.token = sign(event, options.events_exchange, false);
  if (id != nullptr) *id = event.id;
  publish_mandatory(options.events_exchange, event.service, encode_event(event), deadline);
  if (!wait) {
    events_pending_tag = published_on_confirm_channel;
    ++events_pending;
    return true;
  }
  std::size_t returns = 0;
  try {
    wait_confirm(published_on_confirm_channel, event.service, std::chrono::milliseconds(10000), &returns);
  } catch (const SenderError& e) {
    if (e.kind() != SenderError::Kind::kUnroutable) throw;
    return false;
  }
  return returns == 0;
}

void Sender::Impl::publish_deferred_event(std::string_view topic, std::string_view params_json, const DelayPlan& plan,
                                          std::chrono::system_clock::time_point due,
                                          const std::string* deadline_header) {
  Event event = new_event(topic, params_json);
  // Signed for the events exchange, and for when it is due.
  event.token = sign(event, options.events_exchange, false, due);
  publish_deferred(DeferTarget{DeferTarget::Kind::kTopic, std::string(topic)}, plan, encode_event(event), due,
                   deadline_header);
}

std::size_t Sender::Impl::wait_events(std::chrono::milliseconds timeout) {
  if (events_lost > 0) {
    const std::size_t lost_count = events_lost;
    events_lost = 0;
    throw SenderError(SenderError::Kind::kConnectionLost, std::to_string(lost_count) +
                                                              " event(s) published without waiting were not confirmed "
                                                              "before the connection was lost: publish them again");
  }
  if (events_pending == 0) return 0;
  const std::size_t pending = events_pending;
  std::size_t returns = 0;
  try {
    wait_confirm(events_pending_tag, {}, timeout, &returns);
  } catch (const SenderError& e) {
    events_pending = 0;
    events_pending_tag = 0;
    if (e.kind() != SenderError::Kind::kUnroutable) throw;
    return pending;  // no events exchange: none was routed
  }
  events_pending = 0;
  events_pending_tag = 0;
  return returns;
}

}  // namespace sbus
