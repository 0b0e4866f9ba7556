// What a service sends while its handler runs, held until the handler has
// returned (docs/plugins.md, "What a handler sends"): the outbox of one
// service, without a database.
//
// sbusd sets a service's SenderOptions::hold to hold(); the service thread
// opens the outbox before each attempt of a handler (a call, a message or an
// event), then, once the handler has returned, release()s what it holds, in
// the order it was sent, each confirmed by the broker, before the delivery
// is acked; when the handler threw, it discard()s it. A send from any other
// thread (one the plugin started) is not taken: it leaves at once.
//
// Each message released gets an AMQP message id derived from the incoming
// delivery's id, the service and its place in the order (derived_message_id),
// so that a handler run again after a failed or partial release sends the
// same ids, and the receivers' stores drop the copies. A delivery without
// an id (a py-servicebus sender) gives its messages fresh ids.
#pragma once

#include <sbus/sender.hpp>

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace sbus {

// The id of the `index`th message (from 0) that `service`
// (NODE.CATEGORY.SERVICE) sends while it handles the delivery `incoming_id`:
// 32 hex digits of an HMAC-SHA256, the same for the same three. Different
// services handling one delivery (an event's subscribers) get different ids.
std::string derived_message_id(std::string_view incoming_id, std::string_view service, std::size_t index);
// 32 random hex digits: the id of a message sent while handling a delivery
// that carries none.
std::string fresh_message_id();

class Outbox {
 public:
  // `service`: NODE.CATEGORY.SERVICE, for derived_message_id().
  explicit Outbox(std::string service) : service_(std::move(service)) {}

  // The service thread, before each attempt of a handler: from now until
  // release() or discard(), the holds of this thread are taken, and
  // anything still held is dropped. `incoming_id`: the delivery's message
  // id, empty when it has none.
  void open(std::string incoming_id);
  // SenderOptions::hold, on any thread: true when taken (the outbox is open
  // and this is its service thread). With `now` (SendOptions::now) the
  // message is released at once, with the id of its place in the order,
  // and what `release` throws reaches the handler.
  bool hold(SenderOptions::Release release, bool now);
  // The service thread: drops what is held (the handler threw) and closes.
  void discard();

  struct Released {
    std::size_t count = 0;  // the messages confirmed before any failure
    bool ok = true;
    // The broker could not be reached or was lost (SenderError kConnect,
    // kConnectionLost, kTimeout, kBlocked): worth delivering the incoming
    // delivery again. False for a refusal (no queue for a node, a nack):
    // the handler's failure.
    bool connection_failed = false;
    std::string error;  // what failed, for the log and the error queue
  };
  // The service thread, once the handler has returned: publishes what is
  // held, in order, and closes. Stops at the first failure.
  Released release();

 private:
  std::string service_;
  std::mutex mutex_;
  bool open_ = false;        // guarded by mutex_
  std::thread::id owner_;    // guarded by mutex_: the service thread
  std::string incoming_id_;  // the service thread's own
  // The message id of the `index`th message sent since open().
  std::string id_for(std::size_t index) const;
  struct Held {
    std::size_t index;  // its place among all the handler sent, `now` ones too
    SenderOptions::Release release;
  };
  std::vector<Held> held_;  // guarded by mutex_
  std::size_t sent_ = 0;    // guarded by mutex_: held or sent now since open()
};

}  // namespace sbus
