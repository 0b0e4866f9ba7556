// sbus-bench-floor: the floor of the benchmark, a minimal rabbitmq-c echo
// server. It consumes QUEUE (bound to the py-servicebus exchange, as a
// node's queue is) with a prefetch window, publishes each body unchanged to
// its reply_to through the default exchange with its correlation_id, and
// acks after the publish: the same reply path as sbusd, with no parsing, no
// token and no thread hand-off. A delivery without reply_to (a message) is
// only acked.
//
//   sbus-bench-floor PORT QUEUE [PREFETCH [TLS_DIR]]
//
// With TLS_DIR (tests/tls/make_certs' files): over mutual TLS, through
// rabbitmq-c's OpenSSL socket, PORT being the broker's TLS port.
//
// Runs until killed (SIGTERM) or until the broker closes the connection.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "raw_amqp.hpp"

int main(int argc, char** argv) {
  if (argc < 3 || argc > 5) {
    std::fprintf(stderr, "usage: sbus-bench-floor PORT QUEUE [PREFETCH [TLS_DIR]]\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const std::string queue = argv[2];
  const int prefetch = argc >= 4 ? std::atoi(argv[3]) : 64;
  const bench::TlsFiles tls = bench::TlsFiles::in(argc == 5 ? argv[4] : "");
  try {
    bench::RawConnection connection(port, tls);
    amqp_connection_state_t c = connection.get();
    connection.declare_node_queue(queue);
    amqp_basic_qos(c, bench::kRpcChannel, 0, static_cast<std::uint16_t>(prefetch), 0);
    connection.check("basic.qos");
    amqp_basic_consume(c, bench::kRpcChannel, bench::bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    connection.check("basic.consume");

    for (;;) {
      amqp_envelope_t envelope;
      amqp_maybe_release_buffers(c);
      amqp_rpc_reply_t ret = amqp_consume_message(c, &envelope, nullptr, 0);
      if (ret.reply_type != AMQP_RESPONSE_NORMAL) {
        if (ret.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && ret.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
          amqp_frame_t frame;
          if (amqp_simple_wait_frame(c, &frame) != AMQP_STATUS_OK) return 1;
          if (frame.frame_type == AMQP_FRAME_METHOD && (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                                                        frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)) {
            std::fprintf(stderr, "sbus-bench-floor: the broker closed the channel\n");
            return 1;
          }
          continue;
        }
        std::fprintf(stderr, "sbus-bench-floor: %s\n", bench::describe(ret).c_str());
        return 1;
      }
      const amqp_basic_properties_t& in = envelope.message.properties;
      if ((in._flags & AMQP_BASIC_REPLY_TO_FLAG) && in.reply_to.len > 0) {
        amqp_basic_properties_t out{};
        if (in._flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
          out._flags = AMQP_BASIC_CORRELATION_ID_FLAG;
          out.correlation_id = in.correlation_id;
        }
        connection.check_status(
            amqp_basic_publish(c, bench::kRpcChannel, amqp_empty_bytes, in.reply_to, 0, 0, &out, envelope.message.body),
            "publish reply");
      }
      connection.check_status(amqp_basic_ack(c, bench::kRpcChannel, envelope.delivery_tag, 0), "ack");
      amqp_destroy_envelope(&envelope);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sbus-bench-floor: %s\n", e.what());
    return 1;
  }
}
