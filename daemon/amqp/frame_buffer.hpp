// AMQP frames encoded into one buffer, to be written with one send().
//
// rabbitmq-c writes each frame with a send() of its own: a publish is three
// (method, content header, body), so a reply and its ack cost four system
// calls. Under load the worker's replies and acks are queued here and go
// out together, which on a virtual machine saves most of its kernel time.
//
// The frames are encoded with rabbitmq-c's own encoders (amqp_encode_method,
// amqp_encode_properties); only the framing around them is ours.
#pragma once

#include <amqp.h>
#include <amqp_framing.h>

#include <chrono>
#include <cstddef>
#include <memory>

namespace sbus {

class FrameBuffer {
 public:
  // `frame_max`: the connection's negotiated frame size; bodies are split
  // into frames of at most that size.
  explicit FrameBuffer(std::size_t frame_max = AMQP_DEFAULT_FRAME_SIZE) : frame_max_(frame_max) {}
  FrameBuffer(FrameBuffer&&) noexcept = default;
  FrameBuffer& operator=(FrameBuffer&&) noexcept = default;

  void set_frame_max(std::size_t frame_max) { frame_max_ = frame_max; }

  // Appends a method frame; an AMQP status (AMQP_STATUS_OK, or the
  // encoder's error: then nothing is appended).
  int add_method(amqp_channel_t channel, amqp_method_number_t method, void* decoded);
  // Appends basic.publish, its content header and its body frames.
  int add_publish(amqp_channel_t channel, amqp_bytes_t exchange, amqp_bytes_t routing_key, bool mandatory,
                  const amqp_basic_properties_t& properties, amqp_bytes_t body);

  // Writes everything to the socket `fd` (blocking or not); waits up to
  // `stall` at a time for the socket to take more (a negative `stall`:
  // without limit). AMQP_STATUS_OK, or
  // AMQP_STATUS_SOCKET_ERROR / AMQP_STATUS_TIMEOUT, after which the
  // connection must be given up: part of a frame may have gone out. The
  // buffer is empty afterwards either way.
  int write_to(int fd, std::chrono::milliseconds stall);
  // The same through the connection's rabbitmq-c socket: over TLS, one
  // SSL_write for the lot instead of one a frame.
  int write_through(amqp_connection_state_t state, std::chrono::milliseconds stall);

  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  const char* data() const { return data_.get(); }
  void clear();

 private:
  // Room for `bytes` more at the end; returns where they go.
  char* reserve(std::size_t bytes);
  // Encodes one frame around a payload written by `encode` into at most
  // `room` bytes (it returns the length written or a negative status).
  template <typename Encode>
  int add_frame(std::uint8_t type, amqp_channel_t channel, std::size_t room, Encode&& encode);

  std::size_t frame_max_;
  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace sbus
