// The frames the worker writes with one send(): each is read back with
// rabbitmq-c's own decoders, and written through a socket pair.
#include "amqp/frame_buffer.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

struct Frame {
  int type;
  int channel;
  std::string payload;
};

std::uint32_t get32(const std::string& bytes, std::size_t at) {
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < 4; ++i) value = (value << 8) | static_cast<unsigned char>(bytes[at + i]);
  return value;
}

// Splits the bytes into frames; fails the test on bad framing.
std::vector<Frame> frames_of(const std::string& bytes) {
  std::vector<Frame> frames;
  std::size_t at = 0;
  while (at < bytes.size()) {
    REQUIRE(bytes.size() - at >= 8);
    Frame frame;
    frame.type = static_cast<unsigned char>(bytes[at]);
    frame.channel = (static_cast<unsigned char>(bytes[at + 1]) << 8) | static_cast<unsigned char>(bytes[at + 2]);
    const std::uint32_t size = get32(bytes, at + 3);
    REQUIRE(bytes.size() - at >= 8 + size);
    frame.payload = bytes.substr(at + 7, size);
    REQUIRE(static_cast<unsigned char>(bytes[at + 7 + size]) == AMQP_FRAME_END);
    frames.push_back(std::move(frame));
    at += 8 + size;
  }
  return frames;
}

std::string bytes_of(const sbus::FrameBuffer& buffer) {
  return std::string(buffer.data(), buffer.size());
}

std::string text(amqp_bytes_t bytes) {
  return std::string(static_cast<const char*>(bytes.bytes), bytes.len);
}

// A method frame or a content header frame decoded with rabbitmq-c. The
// decoded strings point into `bytes_` and `pool_`, which live as long as
// it does.
class Decoded {
 public:
  // `type`: AMQP_FRAME_METHOD or AMQP_FRAME_HEADER, what the frame must be.
  Decoded(const Frame& frame, int type) {
    init_amqp_pool(&pool_, 4096);
    REQUIRE(frame.type == type);
    if (type == AMQP_FRAME_METHOD) {
      id = get32(frame.payload, 0);
      bytes_ = frame.payload.substr(4);
      REQUIRE(amqp_decode_method(id, &pool_, encoded(), &decoded) == AMQP_STATUS_OK);
    } else {
      bytes_ = frame.payload.substr(12);
      REQUIRE(amqp_decode_properties(AMQP_BASIC_CLASS, &pool_, encoded(), &decoded) == AMQP_STATUS_OK);
    }
  }
  Decoded(const Decoded&) = delete;
  Decoded& operator=(const Decoded&) = delete;
  ~Decoded() { empty_amqp_pool(&pool_); }

  template <typename T>
  const T& as() const {
    return *static_cast<const T*>(decoded);
  }

  amqp_method_number_t id = 0;  // for a method
  void* decoded = nullptr;

 private:
  amqp_bytes_t encoded() { return amqp_bytes_t{bytes_.size(), bytes_.data()}; }

  amqp_pool_t pool_;
  std::string bytes_;
};

// Queues a publish of a body far larger than a socket's buffer.
void queue_large_body(sbus::FrameBuffer& buffer) {
  static std::string body(4 * 1024 * 1024, 'x');
  amqp_basic_properties_t props{};
  REQUIRE(buffer.add_publish(1, amqp_empty_bytes, amqp_cstring_bytes("q"), false, props,
                             amqp_bytes_t{body.size(), body.data()}) == AMQP_STATUS_OK);
}

}  // namespace

TEST_CASE("a publish is a method, a content header and body frames that rabbitmq-c decodes back", "[frames]") {
  sbus::FrameBuffer buffer(4096);
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_CORRELATION_ID_FLAG;
  props.correlation_id = amqp_cstring_bytes("corr-7");
  std::string body(10000, 'b');
  body[0] = 'a';
  body.back() = 'z';
  REQUIRE(buffer.add_publish(1, amqp_cstring_bytes("py-servicebus"), amqp_cstring_bytes("amq.gen-reply"), false, props,
                             amqp_bytes_t{body.size(), body.data()}) == AMQP_STATUS_OK);

  const std::vector<Frame> frames = frames_of(bytes_of(buffer));
  // 10,000 bytes in frames of at most 4,096 - 8: three body frames.
  REQUIRE(frames.size() == 5);
  for (const Frame& frame : frames) CHECK(frame.channel == 1);

  Decoded method(frames[0], AMQP_FRAME_METHOD);
  REQUIRE(method.id == AMQP_BASIC_PUBLISH_METHOD);
  const auto& publish = method.as<amqp_basic_publish_t>();
  CHECK(text(publish.exchange) == "py-servicebus");
  CHECK(text(publish.routing_key) == "amq.gen-reply");
  CHECK(publish.mandatory == 0);

  REQUIRE(frames[1].type == AMQP_FRAME_HEADER);
  const std::string& header = frames[1].payload;
  CHECK(get32(header, 0) >> 16 == AMQP_BASIC_CLASS);
  CHECK(get32(header, 8) == body.size());  // the low half of the 64-bit body size
  Decoded properties(frames[1], AMQP_FRAME_HEADER);
  const auto& read_props = properties.as<amqp_basic_properties_t>();
  CHECK(read_props._flags == AMQP_BASIC_CORRELATION_ID_FLAG);
  CHECK(text(read_props.correlation_id) == "corr-7");

  std::string read_body;
  for (std::size_t i = 2; i < frames.size(); ++i) {
    CHECK(frames[i].type == AMQP_FRAME_BODY);
    CHECK(frames[i].payload.size() <= 4096 - 8);
    read_body += frames[i].payload;
  }
  CHECK(read_body == body);
}

TEST_CASE("an empty body is a publish without body frames", "[frames]") {
  sbus::FrameBuffer buffer;
  amqp_basic_properties_t props{};
  REQUIRE(buffer.add_publish(1, amqp_empty_bytes, amqp_cstring_bytes("q"), false, props, amqp_empty_bytes) ==
          AMQP_STATUS_OK);
  const std::vector<Frame> frames = frames_of(bytes_of(buffer));
  REQUIRE(frames.size() == 2);
  CHECK(frames[0].type == AMQP_FRAME_METHOD);
  CHECK(frames[1].type == AMQP_FRAME_HEADER);
}

TEST_CASE("headers too large for the first guess still encode, and methods follow in order", "[frames]") {
  sbus::FrameBuffer buffer;
  // Far more than the first 512 bytes offered to the encoder.
  std::vector<std::string> keys, values;
  std::vector<amqp_table_entry_t> entries;
  for (int i = 0; i < 40; ++i) {
    keys.push_back("x-key-" + std::to_string(i));
    values.push_back(std::string(100, static_cast<char>('a' + i % 26)));
  }
  for (int i = 0; i < 40; ++i) {
    amqp_table_entry_t entry{amqp_bytes_t{keys[i].size(), keys[i].data()}, {}};
    entry.value.kind = AMQP_FIELD_KIND_UTF8;
    entry.value.value.bytes = amqp_bytes_t{values[i].size(), values[i].data()};
    entries.push_back(entry);
  }
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  props.headers = amqp_table_t{static_cast<int>(entries.size()), entries.data()};
  REQUIRE(buffer.add_publish(1, amqp_empty_bytes, amqp_cstring_bytes("node.error"), false, props,
                             amqp_cstring_bytes("body")) == AMQP_STATUS_OK);
  amqp_basic_ack_t ack{42, 1};
  REQUIRE(buffer.add_method(1, AMQP_BASIC_ACK_METHOD, &ack) == AMQP_STATUS_OK);
  amqp_basic_reject_t reject{43, 0};
  REQUIRE(buffer.add_method(1, AMQP_BASIC_REJECT_METHOD, &reject) == AMQP_STATUS_OK);

  const std::vector<Frame> frames = frames_of(bytes_of(buffer));
  REQUIRE(frames.size() == 5);
  CHECK(frames[1].payload.size() > 40 * 100);
  Decoded properties(frames[1], AMQP_FRAME_HEADER);
  const auto& read_props = properties.as<amqp_basic_properties_t>();
  REQUIRE(read_props.headers.num_entries == 40);
  CHECK(text(read_props.headers.entries[39].key) == "x-key-39");
  CHECK(text(read_props.headers.entries[39].value.value.bytes) == values[39]);
  CHECK(frames[2].payload == "body");

  Decoded read_ack(frames[3], AMQP_FRAME_METHOD);
  REQUIRE(read_ack.id == AMQP_BASIC_ACK_METHOD);
  CHECK(read_ack.as<amqp_basic_ack_t>().delivery_tag == 42);
  CHECK(read_ack.as<amqp_basic_ack_t>().multiple == 1);
  Decoded read_reject(frames[4], AMQP_FRAME_METHOD);
  REQUIRE(read_reject.id == AMQP_BASIC_REJECT_METHOD);
  CHECK(read_reject.as<amqp_basic_reject_t>().delivery_tag == 43);
}

TEST_CASE("properties that do not fit in a frame are refused and leave the buffer as it was", "[frames]") {
  sbus::FrameBuffer buffer(4096);
  amqp_basic_ack_t ack{1, 0};
  REQUIRE(buffer.add_method(1, AMQP_BASIC_ACK_METHOD, &ack) == AMQP_STATUS_OK);
  const std::size_t before = buffer.size();
  std::string huge(8000, 'h');
  amqp_table_entry_t entry{amqp_cstring_bytes("x-huge"), {}};
  entry.value.kind = AMQP_FIELD_KIND_UTF8;
  entry.value.value.bytes = amqp_bytes_t{huge.size(), huge.data()};
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_HEADERS_FLAG;
  props.headers = amqp_table_t{1, &entry};
  CHECK(buffer.add_publish(1, amqp_empty_bytes, amqp_cstring_bytes("q"), false, props, amqp_cstring_bytes("x")) !=
        AMQP_STATUS_OK);
  CHECK(buffer.size() == before);
}

TEST_CASE("write_to sends every queued byte through the socket and empties the buffer", "[frames]") {
  int pair[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  sbus::FrameBuffer buffer;
  // Larger than a socket buffer: the writer waits for the reader.
  queue_large_body(buffer);
  const std::string expected = bytes_of(buffer);
  std::string received;
  std::thread reader([&] {
    char chunk[65536];
    for (ssize_t n; (n = ::read(pair[1], chunk, sizeof chunk)) > 0;)
      received.append(chunk, static_cast<std::size_t>(n));
  });
  CHECK(buffer.write_to(pair[0], 5s) == AMQP_STATUS_OK);
  ::close(pair[0]);
  reader.join();
  ::close(pair[1]);
  CHECK(buffer.empty());
  CHECK(received == expected);
}

TEST_CASE("write_to gives up on a peer that stops reading, and on a closed one", "[frames]") {
  int pair[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  sbus::FrameBuffer buffer;

  SECTION("a peer that reads nothing: a timeout after the stall") {
    queue_large_body(buffer);
    const auto started = std::chrono::steady_clock::now();
    CHECK(buffer.write_to(pair[0], 200ms) == AMQP_STATUS_TIMEOUT);
    CHECK(std::chrono::steady_clock::now() - started >= 200ms);
    CHECK(buffer.empty());
  }
  SECTION("a closed peer: a socket error, and no SIGPIPE") {
    ::close(pair[1]);
    pair[1] = -1;
    queue_large_body(buffer);
    CHECK(buffer.write_to(pair[0], 5s) == AMQP_STATUS_SOCKET_ERROR);
  }
  ::close(pair[0]);
  if (pair[1] >= 0) ::close(pair[1]);
}
