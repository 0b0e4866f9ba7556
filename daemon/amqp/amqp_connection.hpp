// A move-only owner of one rabbitmq-c connection with channel 1 open, and
// the translation of rabbitmq-c's replies into AmqpError.
//
// rabbitmq-c is not thread-safe per connection: one thread at a time may use
// an AmqpConnection, and its owner says which. The sender library and the
// CLI use each connection from the thread that opened it. A worker's
// connection is owned by its BrokerSession (worker/broker_session.hpp):
// whichever thread holds the session's lock uses it, which is the worker's
// connection thread, or, while that thread sleeps, a service thread that
// publishes its own reply and ack or reads as the holder of the reader
// seat. Nothing here locks: the owner's lock is the rule.
#pragma once

#include <amqp.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/broker_uri.hpp"
#include "amqp/frame_buffer.hpp"
#include "base/tls_options.hpp"
#include "amqp/tls_socket.hpp"

namespace sbus {

inline constexpr amqp_channel_t kChannel = 1;
// The worker's ping watcher sends its probes on a channel of their own.
inline constexpr amqp_channel_t kProbeChannel = 2;

struct ConnectOptions {
  std::chrono::milliseconds connect_timeout{3000};
  int heartbeat_seconds = 10;
  // The largest frame proposed to the broker. rabbitmq-c sizes each
  // channel's decoding pool pages and its send buffer by it: with
  // RabbitMQ's 128 KiB a worker holds about 0.2 MB more. 32 KiB still
  // carries a typical call in one frame; longer bodies take more frames.
  int frame_max = 32 * 1024;
  // The connection name shown in the management UI and `rabbitmqctl
  // list_connections client_properties`.
  std::string connection_name = "sbus";
  // For amqps:// URIs.
  TlsOptions tls;
  // flush(): how long the socket may take no bytes before the connection
  // counts as lost.
  std::chrono::milliseconds write_stall{30000};
};

// "login to amqp://guest@127.0.0.1:5672/%2f failed: ACCESS_REFUSED ..."
std::string describe_reply(const amqp_rpc_reply_t& reply);
std::string bytes_to_string(amqp_bytes_t bytes);
inline amqp_bytes_t to_bytes(std::string_view text) {
  return amqp_bytes_t{text.size(), const_cast<char*>(text.data())};
}

// Copies `in` to `out`, its texts and headers allocated from `pool`; false
// when out of memory.
bool clone_properties(const amqp_basic_properties_t& in, amqp_basic_properties_t* out, amqp_pool_t* pool);

// A body longer than this is read with the channel's pool recycled after each
// frame (see read_content()).
inline constexpr std::uint64_t kSpillBodyBytes = 64 * 1024;

// Returned by read_content() for a body larger than its `max_body`: the
// properties are read, the body is not (skip_body() drops it).
inline constexpr int kContentTooLarge = 1;

// Reads the content of the basic.deliver just read on `channel`: its header
// frame and body frames. amqp_read_message() would give every message a
// memory pool of its own (a zeroed 4 KiB page, and three allocations more
// for a delivery) and free it right after; here the properties stay in the
// channel's pool, valid until the next amqp_maybe_release_buffers(), and the
// body goes to `body`, whose memory the caller keeps for the next one.
//
// Every other frame read meanwhile goes to `other`: one of another channel
// (AMQP lets channels interleave, though RabbitMQ sends a content's frames
// together), and reading goes on while `other` returns true; or one of
// `channel` in place of the content (a close). Returns AMQP_STATUS_OK,
// AMQP_STATUS_UNEXPECTED_STATE when it stopped at such a frame,
// AMQP_STATUS_BAD_AMQP_DATA for more body than the header announced, or the
// error of a read.
//
// A header announcing more than `max_body` bytes returns kContentTooLarge
// with the properties read, `*size` set and nothing of the body: the caller
// copies what it needs of the properties, then drops the body with
// skip_body(), which never holds more than a frame of it.
//
// rabbitmq-c reads every frame into the channel's pool, which keeps its
// pages until the connection ends: a body read whole would leave as much
// pool behind. Given `spill`, a body over kSpillBodyBytes has its properties
// copied there (*properties then points into `spill`, valid until the caller
// recycles it) and the channel's pool recycled after each frame.
template <class OtherFrame>
int read_content(amqp_connection_state_t c, amqp_channel_t channel, const amqp_basic_properties_t** properties,
                 std::string* body, OtherFrame&& other, std::uint64_t max_body = UINT64_MAX,
                 std::uint64_t* announced = nullptr, amqp_pool_t* spill = nullptr,
                 amqp_basic_properties_t* spilled = nullptr) {
  *properties = nullptr;
  std::uint64_t size = 0;
  bool recycle = false;
  body->clear();
  while (*properties == nullptr || body->size() < size) {
    amqp_frame_t frame;
    const int status = amqp_simple_wait_frame(c, &frame);
    if (status != AMQP_STATUS_OK) return status;
    if (frame.channel != channel) {
      if (!other(frame)) return AMQP_STATUS_UNEXPECTED_STATE;
      continue;
    }
    if (frame.frame_type != (*properties == nullptr ? AMQP_FRAME_HEADER : AMQP_FRAME_BODY)) {
      other(frame);
      return AMQP_STATUS_UNEXPECTED_STATE;
    }
    if (frame.frame_type == AMQP_FRAME_HEADER) {
      *properties = static_cast<const amqp_basic_properties_t*>(frame.payload.properties.decoded);
      size = frame.payload.properties.body_size;
      if (announced != nullptr) *announced = size;
      if (size > max_body) return kContentTooLarge;
      // One allocation for the whole body: grown frame by frame, a large
      // body would be copied again at each doubling.
      body->reserve(static_cast<std::size_t>(size));
      if (size > kSpillBodyBytes && spill != nullptr && clone_properties(**properties, spilled, spill)) {
        *properties = spilled;
        recycle = true;
        amqp_maybe_release_buffers_on_channel(c, channel);
      }
      continue;
    }
    const amqp_bytes_t fragment = frame.payload.body_fragment;
    if (fragment.len > size - body->size()) return AMQP_STATUS_BAD_AMQP_DATA;
    body->append(static_cast<const char*>(fragment.bytes), fragment.len);
    if (recycle) amqp_maybe_release_buffers_on_channel(c, channel);
  }
  return AMQP_STATUS_OK;
}

// Reads and drops the `size` bytes of body frames that follow a header for
// which read_content() returned kContentTooLarge. rabbitmq-c reads every
// frame into the channel's pool, which keeps its pages: the pool is recycled
// after each frame, so that a body of any size costs one frame of memory.
// That frees the properties read_content() returned. Returns as read_content().
template <class OtherFrame>
int skip_body(amqp_connection_state_t c, amqp_channel_t channel, std::uint64_t size, OtherFrame&& other) {
  amqp_maybe_release_buffers_on_channel(c, channel);
  while (size > 0) {
    amqp_frame_t frame;
    const int status = amqp_simple_wait_frame(c, &frame);
    if (status != AMQP_STATUS_OK) return status;
    if (frame.channel != channel) {
      if (!other(frame)) return AMQP_STATUS_UNEXPECTED_STATE;
      continue;
    }
    if (frame.frame_type != AMQP_FRAME_BODY) {
      other(frame);
      return AMQP_STATUS_UNEXPECTED_STATE;
    }
    if (frame.payload.body_fragment.len > size) return AMQP_STATUS_BAD_AMQP_DATA;
    size -= frame.payload.body_fragment.len;
    amqp_maybe_release_buffers_on_channel(c, channel);
  }
  return AMQP_STATUS_OK;
}

class AmqpConnection {
 public:
  // Connects, logs in and opens channel 1; throws AmqpError naming the
  // broker and what failed. For amqps:// a failed handshake says why:
  // "TLS handshake with amqps://guest@localhost:5671/%2f failed: certificate
  // verify failed: unable to get local issuer certificate (unknown CA: ...)".
  static AmqpConnection open(const BrokerUri& uri, const ConnectOptions& options);

  AmqpConnection() = default;
  AmqpConnection(AmqpConnection&& other) noexcept;
  AmqpConnection& operator=(AmqpConnection&& other) noexcept;
  AmqpConnection(const AmqpConnection&) = delete;
  AmqpConnection& operator=(const AmqpConnection&) = delete;
  ~AmqpConnection();

  amqp_connection_state_t get() const { return state_; }
  explicit operator bool() const { return state_ != nullptr; }
  // -1 for a connection never opened (or abandoned).
  int fd() const { return state_ != nullptr ? amqp_get_sockfd(state_) : -1; }
  const BrokerUri& uri() const { return uri_; }

  // Throws AmqpError "OPERATION on BROKER failed: DETAIL" unless `reply` is
  // normal.
  void check(const amqp_rpc_reply_t& reply, std::string_view operation) const;
  // Same, for the last synchronous method on this connection.
  void check_last(std::string_view operation) const;
  // Throws for a non-OK status code of rabbitmq-c.
  void check_status(int status, std::string_view operation) const;

  // Frames queued for one write by flush(). A reply and its ack are four
  // frames, which rabbitmq-c writes with four send() calls; queued, they go
  // out with one, and so do the replies and acks of a whole loop turn;
  // over TLS, with one SSL_write.
  // Nothing else may be sent on the connection while frames are queued:
  // flush() first. Each returns an AMQP status.
  int queue_publish(amqp_channel_t channel, amqp_bytes_t exchange, amqp_bytes_t routing_key,
                    const amqp_basic_properties_t& properties, amqp_bytes_t body, bool mandatory = false);
  int queue_method(amqp_channel_t channel, amqp_method_number_t method, void* decoded);
  // Writes what is queued. On failure the connection is broken (part of a
  // frame may have gone out): give it up. The socket may take no bytes for
  // ConnectOptions::write_stall, except while the broker says the
  // connection is blocked: a blocked connection's socket is not read until
  // the alarm clears, and then it is, so flush() waits for that.
  int flush();
  bool has_queued() const { return !queued_.empty(); }

  // RabbitMQ's connection.blocked and connection.unblocked (a resource
  // alarm: the broker reads nothing more from a connection that publishes
  // until it clears), which open() asks for at login. Returns true when
  // `frame` is one of them and records it; blocked_reason() is the
  // broker's text ("low on memory"). Not an error: nothing sent is lost,
  // it waits in the socket.
  bool note_blocking(const amqp_frame_t& frame);
  bool blocked() const { return blocked_; }
  const std::string& blocked_reason() const { return blocked_reason_; }

  // Closes channel and connection politely (best effort, never throws) and
  // frees the connection; without the handshake while blocked().
  void close();
  // Frees the connection without the closing handshake: for a connection
  // already known to be dead, where the handshake could only time out.
  void abandon();

 private:
  // The steps of open(): the TCP or TLS socket, then the AMQP login with
  // sbus's client properties, with the TLS refusal a broker states only
  // after the handshake.
  void open_socket(const ConnectOptions& options);
  void log_in(const ConnectOptions& options);

  amqp_connection_state_t state_ = nullptr;
  BrokerUri uri_;
  // amqps:// only. Freed after state_, whose SSL context reports into it.
  std::unique_ptr<TlsSocket> tls_;
  FrameBuffer queued_;
  std::chrono::milliseconds write_stall_{30000};
  bool blocked_ = false;
  std::string blocked_reason_;
};

}  // namespace sbus
