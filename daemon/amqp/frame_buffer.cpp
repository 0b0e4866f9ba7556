#include "amqp/frame_buffer.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>

// rabbitmq-c's own send loop (amqp_socket.c): the whole buffer through the
// connection's socket, its TLS socket included, waiting for room until the
// deadline (CLOCK_MONOTONIC nanoseconds; all ones: none). Not in its public
// headers; sbus links rabbitmq-c's static archive, which defines it, so a
// version without it fails the link, not a call. Returns `len` when all was
// sent, fewer bytes at the deadline, or a negative AMQP status.
extern "C" {
struct sbus_amqp_time {
  std::uint64_t time_point_ns;
};
ssize_t amqp_try_send(amqp_connection_state_t state, const void* buf, size_t len, sbus_amqp_time deadline, int flags);
}

namespace sbus {
namespace {

// type (1), channel (2), payload size (4) ... frame end (1).
constexpr std::size_t kFrameHeader = 7;
constexpr std::size_t kFrameFooter = 1;
// Room first offered to a method's or content header's encoder; doubled up
// to frame_max when it reports too little.
constexpr std::size_t kFirstRoom = 512;
// A buffer grown past this by a large body is freed once written.
constexpr std::size_t kKeepCapacity = 256 * 1024;

void put16(char* at, std::uint16_t value) {
  at[0] = static_cast<char>(value >> 8);
  at[1] = static_cast<char>(value);
}

void put32(char* at, std::uint32_t value) {
  put16(at, static_cast<std::uint16_t>(value >> 16));
  put16(at + 2, static_cast<std::uint16_t>(value));
}

void put64(char* at, std::uint64_t value) {
  put32(at, static_cast<std::uint32_t>(value >> 32));
  put32(at + 4, static_cast<std::uint32_t>(value));
}

}  // namespace

char* FrameBuffer::reserve(std::size_t bytes) {
  if (capacity_ - size_ < bytes) {
    const std::size_t capacity = std::max({size_ + bytes, 2 * capacity_, std::size_t{4096}});
    auto grown = std::make_unique_for_overwrite<char[]>(capacity);
    if (size_ > 0) std::memcpy(grown.get(), data_.get(), size_);
    data_ = std::move(grown);
    capacity_ = capacity;
  }
  return data_.get() + size_;
}

void FrameBuffer::clear() {
  size_ = 0;
  if (capacity_ > kKeepCapacity) {
    data_.reset();
    capacity_ = 0;
  }
}

template <typename Encode>
int FrameBuffer::add_frame(std::uint8_t type, amqp_channel_t channel, std::size_t room, Encode&& encode) {
  const std::size_t payload_max = frame_max_ - kFrameHeader - kFrameFooter;
  for (room = std::min(room, payload_max);; room = std::min(2 * room, payload_max)) {
    char* frame = reserve(kFrameHeader + room + kFrameFooter);
    const int written = encode(frame + kFrameHeader, room);
    if (written >= 0) {
      frame[0] = static_cast<char>(type);
      put16(frame + 1, channel);
      put32(frame + 3, static_cast<std::uint32_t>(written));
      frame[kFrameHeader + written] = static_cast<char>(AMQP_FRAME_END);
      size_ += kFrameHeader + static_cast<std::size_t>(written) + kFrameFooter;
      return AMQP_STATUS_OK;
    }
    // rabbitmq-c's encoders say BAD_AMQP_DATA (TABLE_TOO_BIG in a table)
    // both for a buffer too small and for data they cannot encode: only
    // more room tells them apart.
    const bool maybe_room = written == AMQP_STATUS_BAD_AMQP_DATA || written == AMQP_STATUS_TABLE_TOO_BIG;
    if (!maybe_room || room == payload_max) return written;
  }
}

int FrameBuffer::add_method(amqp_channel_t channel, amqp_method_number_t method, void* decoded) {
  return add_frame(AMQP_FRAME_METHOD, channel, kFirstRoom, [&](char* payload, std::size_t room) -> int {
    if (room < 4) return AMQP_STATUS_BAD_AMQP_DATA;
    put32(payload, method);
    const int written = amqp_encode_method(method, decoded, amqp_bytes_t{room - 4, payload + 4});
    return written < 0 ? written : written + 4;
  });
}

int FrameBuffer::add_publish(amqp_channel_t channel, amqp_bytes_t exchange, amqp_bytes_t routing_key, bool mandatory,
                             const amqp_basic_properties_t& properties, amqp_bytes_t body) {
  const std::size_t rollback = size_;
  amqp_basic_publish_t publish{};
  publish.exchange = exchange;
  publish.routing_key = routing_key;
  publish.mandatory = mandatory ? 1 : 0;
  int status = add_method(channel, AMQP_BASIC_PUBLISH_METHOD, &publish);
  if (status == AMQP_STATUS_OK) {
    // class id (2), weight (2), body size (8), then the properties.
    status = add_frame(AMQP_FRAME_HEADER, channel, kFirstRoom, [&](char* payload, std::size_t room) -> int {
      if (room < 12) return AMQP_STATUS_BAD_AMQP_DATA;
      put16(payload, AMQP_BASIC_CLASS);
      put16(payload + 2, 0);
      put64(payload + 4, body.len);
      amqp_basic_properties_t copy = properties;  // the encoder takes a non-const pointer
      const int written = amqp_encode_properties(AMQP_BASIC_CLASS, &copy, amqp_bytes_t{room - 12, payload + 12});
      return written < 0 ? written : written + 12;
    });
  }
  if (status != AMQP_STATUS_OK) {
    size_ = rollback;
    return status;
  }
  const std::size_t chunk_max = frame_max_ - kFrameHeader - kFrameFooter;
  // Room for all the body's frames at once: a large body is copied into
  // the buffer once, not again each time the buffer doubles.
  const std::size_t frames = (body.len + chunk_max - 1) / chunk_max;
  reserve(body.len + frames * (kFrameHeader + kFrameFooter));
  const char* bytes = static_cast<const char*>(body.bytes);
  for (std::size_t offset = 0; offset < body.len;) {
    const std::size_t chunk = std::min(chunk_max, body.len - offset);
    char* frame = reserve(kFrameHeader + chunk + kFrameFooter);
    frame[0] = static_cast<char>(AMQP_FRAME_BODY);
    put16(frame + 1, channel);
    put32(frame + 3, static_cast<std::uint32_t>(chunk));
    std::memcpy(frame + kFrameHeader, bytes + offset, chunk);
    frame[kFrameHeader + chunk] = static_cast<char>(AMQP_FRAME_END);
    size_ += kFrameHeader + chunk + kFrameFooter;
    offset += chunk;
  }
  return AMQP_STATUS_OK;
}

int FrameBuffer::write_through(amqp_connection_state_t state, std::chrono::milliseconds stall) {
  sbus_amqp_time deadline{std::numeric_limits<std::uint64_t>::max()};
  if (stall.count() >= 0) {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    deadline.time_point_ns = static_cast<std::uint64_t>(now.tv_sec) * 1000000000u +
                             static_cast<std::uint64_t>(now.tv_nsec) +
                             static_cast<std::uint64_t>(std::chrono::nanoseconds(stall).count());
  }
  const ssize_t sent = amqp_try_send(state, data_.get(), size_, deadline, 0);
  int status = AMQP_STATUS_OK;
  if (sent < 0) {
    status = static_cast<int>(sent);
  } else if (static_cast<std::size_t>(sent) < size_) {
    status = AMQP_STATUS_TIMEOUT;
  }
  clear();
  return status;
}

int FrameBuffer::write_to(int fd, std::chrono::milliseconds stall) {
  std::size_t sent = 0;
  int status = AMQP_STATUS_OK;
  while (sent < size_) {
    const ssize_t n = ::send(fd, data_.get() + sent, size_ - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      status = AMQP_STATUS_SOCKET_ERROR;
      break;
    }
    // The broker is not reading (flow control, or a hung broker): wait for
    // room, but not forever.
    pollfd writable{fd, POLLOUT, 0};
    const int ready = ::poll(&writable, 1, static_cast<int>(stall.count()));
    if (ready == 0) {
      status = AMQP_STATUS_TIMEOUT;
      break;
    }
    if (ready < 0 && errno != EINTR) {
      status = AMQP_STATUS_SOCKET_ERROR;
      break;
    }
  }
  clear();
  return status;
}

}  // namespace sbus
