#include "floor_serving.hpp"

#include <cstdio>
#include <cstdlib>

namespace bench {

std::optional<FloorArgs> parse_floor_args(const char* program, int argc, char** argv) {
  if (argc < 3 || argc > 5) {
    std::fprintf(stderr, "usage: %s PORT QUEUE [PREFETCH [TLS_DIR]]\n", program);
    return std::nullopt;
  }
  FloorArgs args;
  args.port = std::atoi(argv[1]);
  args.queue = argv[2];
  if (argc >= 4) args.prefetch = std::atoi(argv[3]);
  args.tls = TlsFiles::in(argc == 5 ? argv[4] : "");
  return args;
}

void start_consuming(RawConnection& connection, const FloorArgs& args) {
  amqp_connection_state_t c = connection.get();
  connection.declare_node_queue(args.queue);
  amqp_basic_qos(c, kRpcChannel, 0, static_cast<std::uint16_t>(args.prefetch), 0);
  connection.check("basic.qos");
  amqp_basic_consume(c, kRpcChannel, bytes(args.queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  connection.check("basic.consume");
}

bool next_delivery(RawConnection& connection, amqp_envelope_t* envelope, const char* program) {
  amqp_connection_state_t c = connection.get();
  for (;;) {
    amqp_maybe_release_buffers(c);
    const amqp_rpc_reply_t ret = amqp_consume_message(c, envelope, nullptr, 0);
    if (ret.reply_type == AMQP_RESPONSE_NORMAL) return true;
    if (ret.reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION || ret.library_error != AMQP_STATUS_UNEXPECTED_STATE) {
      std::fprintf(stderr, "%s: %s\n", program, describe(ret).c_str());
      return false;
    }
    // A frame other than a delivery: the broker closing, or one to skip.
    amqp_frame_t frame;
    if (amqp_simple_wait_frame(c, &frame) != AMQP_STATUS_OK) return false;
    if (frame.frame_type == AMQP_FRAME_METHOD && (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                                                  frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)) {
      std::fprintf(stderr, "%s: the broker closed the channel\n", program);
      return false;
    }
  }
}

void echo_reply(RawConnection& connection, const amqp_envelope_t& envelope) {
  const amqp_basic_properties_t& in = envelope.message.properties;
  if (!(in._flags & AMQP_BASIC_REPLY_TO_FLAG) || in.reply_to.len == 0) return;
  amqp_basic_properties_t out{};
  if (in._flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
    out._flags = AMQP_BASIC_CORRELATION_ID_FLAG;
    out.correlation_id = in.correlation_id;
  }
  connection.check_status(amqp_basic_publish(connection.get(), kRpcChannel, amqp_empty_bytes, in.reply_to, 0, 0, &out,
                                             envelope.message.body),
                          "publish reply");
}

}  // namespace bench
