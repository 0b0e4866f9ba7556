// What identifies a delivery on its way through a worker: read once from
// the broker's frames (BrokerSession's reader), carried in the Job to the
// service thread and back in the Outcome, and used for the reply and the
// ack. One value, moved from struct to struct, never copied field by field.
#pragma once

#include <cstdint>
#include <string>

namespace sbus {

// A call is answered on `reply_to`; a message is answered by nobody (and,
// when it keeps failing, moved to the error queue). Set where the delivery
// is read, from whether it names a reply address: never asked again.
// An event (docs/protocol.md, "Events") is handled as a message is, by the
// event service whose queue it came from.
enum class DeliveryKind : std::uint8_t { kCall, kMessage, kEvent };

struct Envelope {
  DeliveryKind kind = DeliveryKind::kMessage;
  // The connection it came on (BrokerSession::generation()): its delivery
  // tag means nothing on another.
  std::uint64_t generation = 0;
  std::uint64_t delivery_tag = 0;
  std::string reply_to;  // calls only
  std::string correlation_id;
  // CrashJournal::key of the delivery, once admission has computed it.
  std::uint64_t key = 0;
  // An hmac-sha256-v2 call's nonce: its replies are signed for it. Empty:
  // replies go unsigned (compat and hmac-sha256 calls, and messages).
  std::string reply_nonce;
  // Who sent it (docs/security.md#callers), once its token is checked:
  // kSharedCaller for the shared secret. `reply_key`: the key its replies
  // are signed with when it is not the secret (a caller's own); it points
  // into the worker's Config, which outlives every delivery.
  std::string caller;
  const std::string* reply_key = nullptr;
  // Its message id (the AMQP property message_id), checked by admission;
  // empty: none (py-servicebus). `handled_key`: its key in the handled
  // store (HandledStore::key), set once admission knows its service; empty:
  // it is not remembered (no id, or no store).
  std::string message_id;
  std::string handled_key;

  bool is_call() const { return kind == DeliveryKind::kCall; }
  bool is_event() const { return kind == DeliveryKind::kEvent; }
};

}  // namespace sbus
