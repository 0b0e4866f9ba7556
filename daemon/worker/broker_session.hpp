// A worker's session with its broker: the rabbitmq-c connection that
// consumes the node queue, the acks of its deliveries, the reply guard and
// the quarantine connection, the replies kept across a lost connection, and
// the route probe. One lock, mutex(), guards all of it; clang's
// -Wthread-safety checks every use (the unit test `thread_safety`).
//
// Who holds the lock:
//   - The worker's connection thread, always, except while it sleeps in
//     epoll_wait(). It alone opens, probes, restores the route, stops
//     consuming and gives the connection up: those methods also require
//     the role connection_thread(), which the worker's main thread takes
//     on when it starts and no service thread holds.
//   - A service thread, only with try_lock() (never lock(): that would
//     wait for a connection thread that is busy, not asleep), and only for
//     the two things RunnerHost allows it: finishing its own outcome inline
//     (direct_route(), publish_reply(), settle(), flush_acks(),
//     needs_turn()), or, as the reader seat's holder, reading a batch
//     (read_one(), socket_empty(), flush_acks()), which carries out what
//     admission decides for each delivery read just as the connection
//     thread would: replies, dead letters, the quarantine.
// rabbitmq-c is not thread-safe per connection: holding this lock is what
// makes a thread the connection's user for that time.
#pragma once

#include <amqp.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/amqp_connection.hpp"
#include "base/broker_uri.hpp"
#include "base/thread_annotations.hpp"
#include "config/config.hpp"
#include "worker/ack_tracker.hpp"
#include "worker/delivery.hpp"
#include "worker/reply_guard.hpp"
#include "worker/route_probe.hpp"
#include "worker/unsent_replies.hpp"

namespace sbus {

// What sbus.stats reports of the session.
struct SessionStats {
  bool blocked = false;
  std::string blocked_reason;
  std::uint64_t blocks = 0;
  std::chrono::steady_clock::duration blocked_for{};
  std::uint64_t replies_dropped = 0;               // to dead addresses, or unauthenticated ones beyond the limit
  std::uint64_t replies_quarantined = 0;           // published on the quarantine connection
  std::chrono::steady_clock::duration ping_rtt{};  // of the last probe answered
};

class BrokerSession {
 public:
  using Clock = std::chrono::steady_clock;
  // What one read found: a frame (a delivery or another), nothing ready
  // (the socket is drained), or a lost connection.
  enum class Read { kFrame, kNothing, kLost };

  // Gets each delivery read_one() reads, on the reading thread, with the
  // lock held. The Delivery is valid during the call only.
  class DeliveryHandler {
   public:
    virtual void on_delivery(Delivery& delivery) = 0;

   protected:
    ~DeliveryHandler() = default;
  };

  BrokerSession(const Config& config, const BrokerUri& uri);
  ~BrokerSession();
  BrokerSession(const BrokerSession&) = delete;
  BrokerSession& operator=(const BrokerSession&) = delete;

  Mutex& mutex() const RETURN_CAPABILITY(mutex_) { return mutex_; }
  void lock() ACQUIRE(mutex_) { mutex_.lock(); }
  void unlock() RELEASE(mutex_) { mutex_.unlock(); }
  // A service thread: true when the connection thread sleeps (the lock was
  // free) and this thread now holds it.
  bool try_lock() TRY_ACQUIRE(true, mutex_) { return mutex_.try_lock(); }
  // The role of the worker's main thread (thread_annotations.hpp).
  ThreadRole& connection_thread() const RETURN_CAPABILITY(connection_thread_) { return connection_thread_; }

  // Connection thread. Connects, declares the exchange, the node, error and
  // hold queues, asks for `window` deliveries and consumes; false (logged)
  // when the broker cannot be reached or refuses.
  bool open(std::size_t window) REQUIRES(mutex_, connection_thread_);
  // Connection thread, once the worker watches fd(): serving starts on a
  // new generation, and the session proves its own node (RouteProbe).
  void start() REQUIRES(mutex_, connection_thread_);
  // The last open() found no TCP listener.
  bool broker_unreachable() const REQUIRES(mutex_) { return broker_unreachable_; }
  // The broker closed the connection because a reply could not be
  // delivered (541): something a caller chose, so the reconnect is at once
  // and the back-off does not grow. Cleared by open().
  bool closed_by_reply() const REQUIRES(mutex_) { return closed_by_reply_; }
  // Connection thread: basic.cancel. Deliveries read from now on stay
  // unacked (the broker gives them to the next consumer).
  void stop_consuming() REQUIRES(mutex_, connection_thread_);
  bool stopping() const REQUIRES(mutex_) { return stopping_; }
  // Connection thread: after a loss, frees the connections without the
  // closing handshake; at the end, closes them politely.
  void abandon() REQUIRES(mutex_, connection_thread_);
  void close() REQUIRES(mutex_, connection_thread_);

  // Whether the connection serves; lose() marks it lost (the connection
  // thread then reconnects).
  bool ok() const REQUIRES(mutex_) { return connection_ok_; }
  void lose() REQUIRES(mutex_) { connection_ok_ = false; }
  int fd() const REQUIRES(mutex_) { return connection_.fd(); }
  std::uint64_t generation() const REQUIRES(mutex_) { return generation_; }
  // Whether `envelope` came on this connection, which still serves: its
  // delivery tag can be acked.
  bool current(const Envelope& envelope) const REQUIRES(mutex_) {
    return connection_ok_ && envelope.generation == generation_;
  }
  bool heartbeats() const REQUIRES(mutex_) { return amqp_get_heartbeat(connection_.get()) > 0; }

  // Reads one delivery (handed to `handler`) or other frame, if one is
  // ready.
  Read read_one(DeliveryHandler& handler) REQUIRES(mutex_);
  // Whether all that reached the socket has been read, without another
  // read (plain TCP only; over TLS, false).
  bool socket_empty() REQUIRES(mutex_);
  // Whether rabbitmq-c holds frames or bytes already read, which poll()
  // cannot see.
  bool has_unread() REQUIRES(mutex_);

  // Connection thread: the route probe (route_probe.hpp). Each false or
  // overdue marks the connection lost.
  bool probe_overdue() REQUIRES(mutex_, connection_thread_);
  bool probe_due(Clock::time_point now) const REQUIRES(mutex_, connection_thread_);
  bool probe() REQUIRES(mutex_, connection_thread_);
  // When the loop must look at the probe again; none without pings.
  std::optional<Clock::time_point> probe_wake() const REQUIRES(mutex_, connection_thread_);
  bool route_lost() const REQUIRES(mutex_) { return probe_.route_lost(); }
  bool restore_route() REQUIRES(mutex_, connection_thread_);

  // Whether a reply to an authenticated caller at `reply_to` goes out on
  // this connection, not through the quarantine (which may block).
  bool direct_route(const std::string& reply_to) const REQUIRES(mutex_);
  // Publishes a reply (or drops it, or sends it through the quarantine
  // connection: ReplyGuard); false when the connection failed.
  bool publish_reply(const std::string& reply_to, const std::string& correlation_id, std::string_view body,
                     ReplyGuard::Caller caller) REQUIRES(mutex_);
  // To the error queue, or to `queue`. The x-sbus-* headers are sbusd's
  // own: those of the delivery are replaced by `own_headers` and the ones
  // set here. An entry of the error queue is sealed (error_seal.hpp) unless
  // it was refused for its token (own header x-sbus-token). False when the
  // connection failed.
  // `message_id`: the delivery's (Envelope::message_id), kept as its
  // property so that it comes back with it; empty: none.
  bool publish_dead_letter(std::string_view body, const std::string& service, const std::string& error, int attempts,
                           const Headers& headers, const Headers& own_headers = {}, const std::string& queue = {},
                           std::string_view message_id = {}) REQUIRES(mutex_);
  // A delivery is handled (ack: acked with the next flush_acks()) or
  // refused (basic.reject at once); leave() keeps it unacked on purpose.
  void settle(std::uint64_t tag, bool ack) REQUIRES(mutex_);
  void leave(std::uint64_t tag) REQUIRES(mutex_) { acks_.leave(tag); }
  // Rejected with requeue at once: the broker delivers it again.
  void requeue(std::uint64_t tag) REQUIRES(mutex_);
  // Queues the due acks, then writes everything queued: the replies and
  // acks of this turn go out together (FrameBuffer).
  void flush_acks() REQUIRES(mutex_);
  bool send_queued() REQUIRES(mutex_);
  // After an inline completion: whether the connection thread must run a
  // turn (the connection failed, or rabbitmq-c read frames while sending).
  bool needs_turn() REQUIRES(mutex_);

  UnsentReplies& unsent() REQUIRES(mutex_) { return unsent_; }
  SessionStats stats() const REQUIRES(mutex_);

 private:
  Read read_delivery(const amqp_frame_t& deliver, DeliveryHandler& handler) REQUIRES(mutex_);
  void release_body(amqp_channel_t channel, const amqp_basic_properties_t* props, std::uint64_t too_large)
      REQUIRES(mutex_);
  bool handle_frame(const amqp_frame_t& frame) REQUIRES(mutex_);
  void reject(std::uint64_t tag, bool requeue) REQUIRES(mutex_);
  Read lost(const char* what, int status) REQUIRES(mutex_);
  void suspect_recent_replies(int reply_code) REQUIRES(mutex_);
  void publish_quarantined(const std::string& reply_to, const std::string& correlation_id, std::string_view body,
                           std::uint64_t address, ReplyGuard::Caller caller) REQUIRES(mutex_);
  bool may_open_quarantine() const REQUIRES(mutex_);
  void declare(AmqpConnection& connection, std::size_t window) REQUIRES(mutex_);

  const Config& config_;
  const BrokerUri& uri_;
  mutable Mutex mutex_;
  mutable ThreadRole connection_thread_;
  AmqpConnection connection_ GUARDED_BY(mutex_);
  bool connection_ok_ GUARDED_BY(mutex_) = false;
  bool broker_unreachable_ GUARDED_BY(mutex_) = false;
  bool closed_by_reply_ GUARDED_BY(mutex_) = false;
  bool stopping_ GUARDED_BY(mutex_) = false;
  std::uint64_t generation_ GUARDED_BY(mutex_) = 0;
  std::string consumer_tag_ GUARDED_BY(mutex_);
  std::vector<std::string> event_consumer_tags_ GUARDED_BY(mutex_);  // event_queues.hpp
  AckTracker acks_ GUARDED_BY(mutex_);                               // the deliveries of this connection not acked yet
  RouteProbe probe_ GUARDED_BY(mutex_);
  UnsentReplies unsent_ GUARDED_BY(mutex_);
  ReplyGuard replies_ GUARDED_BY(mutex_);
  AmqpConnection quarantine_ GUARDED_BY(mutex_);
  // When the quarantine connection was last opened (a ring): a flood of
  // forged addresses, each of which costs it a close, may not make the
  // connection thread spend its time reconnecting it.
  std::array<Clock::time_point, 10> quarantine_opens_ GUARDED_BY(mutex_){};
  std::size_t next_quarantine_open_ GUARDED_BY(mutex_) = 0;
  std::uint64_t replies_dropped_ GUARDED_BY(mutex_) = 0;
  std::uint64_t replies_quarantined_ GUARDED_BY(mutex_) = 0;
  std::string body_ GUARDED_BY(mutex_);  // of the delivery being read (read_delivery())
  // The properties of a long delivery, copied out of the channel's pool so
  // that it can be recycled frame by frame (read_content()).
  amqp_pool_t spill_pool_ GUARDED_BY(mutex_){};
  amqp_basic_properties_t spilled_ GUARDED_BY(mutex_){};
};

}  // namespace sbus
