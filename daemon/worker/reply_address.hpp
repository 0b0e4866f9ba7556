// What a reply address says about where its caller is.
//
// A direct reply-to address ("amq.rabbitmq.reply-to.PID.KEY") names the
// channel of the caller: PID is base64 of the Erlang term of that channel's
// process, which carries a node name (RabbitMQ 3.10: the node itself,
// "rabbit@host", or with the v2 encoding a stand-in "reply@HASH"). A reply
// to a node that is not (or no longer) in the cluster makes RabbitMQ close
// the replying connection (541), so the worker publishes on its serving
// connection only to nodes proven alive (ReplyGuard). Any other reply_to
// is a queue name, and a publish to a queue that does not exist is dropped
// by the broker without harm.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sbus {

inline constexpr std::string_view kDirectReplyPrefix = "amq.rabbitmq.reply-to";

// Whether publishing to `reply_to` goes through the broker's direct reply-to
// path (also a malformed or bare "amq.rabbitmq.reply-to...").
inline bool is_direct_reply_to(std::string_view reply_to) {
  return reply_to.substr(0, kDirectReplyPrefix.size()) == kDirectReplyPrefix;
}

// The node name encoded in a direct reply-to address, or nothing when it
// is not one or cannot be decoded.
std::optional<std::string> direct_reply_node(std::string_view reply_to);

}  // namespace sbus
