// sbus-bench-floor-tuned: the floor as a tuned rabbitmq-c server writes it,
// beside the ack-each floor (floor_server.cpp), which it follows line for
// line but for two things that make the broker do less:
//   - one basic.ack with `multiple` when a run of deliveries is done (all
//     that rabbitmq-c and the socket hold have been answered), not one per
//     delivery: still only after each reply is published;
//   - the frames of a run coalesced: TCP_CORK from the run's first publish
//     to its ack, so that the replies and the ack leave in as few segments
//     as the kernel can make of them (the broker reads fewer, larger ones).
//
//   sbus-bench-floor-tuned PORT QUEUE [PREFETCH [TLS_DIR]]
//
// Runs until killed (SIGTERM) or until the broker closes the connection.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "raw_amqp.hpp"

namespace {

void cork(int fd, bool on) {
  const int value = on ? 1 : 0;
  ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &value, sizeof(value));
}

// Whether another delivery of this run can be read without waiting: in
// rabbitmq-c's buffers, or (plain TCP) already in the socket.
bool more_ready(amqp_connection_state_t c, int fd, bool tls) {
  if (amqp_frames_enqueued(c) || amqp_data_in_buffer(c)) return true;
  if (tls) return false;
  int unread = 0;
  return ::ioctl(fd, FIONREAD, &unread) == 0 && unread > 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 5) {
    std::fprintf(stderr, "usage: sbus-bench-floor-tuned PORT QUEUE [PREFETCH [TLS_DIR]]\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const std::string queue = argv[2];
  const int prefetch = argc >= 4 ? std::atoi(argv[3]) : 64;
  const bench::TlsFiles tls = bench::TlsFiles::in(argc == 5 ? argv[4] : "");
  try {
    bench::RawConnection connection(port, tls);
    amqp_connection_state_t c = connection.get();
    const int fd = connection.fd();
    connection.declare_node_queue(queue);
    amqp_basic_qos(c, bench::kRpcChannel, 0, static_cast<std::uint16_t>(prefetch), 0);
    connection.check("basic.qos");
    amqp_basic_consume(c, bench::kRpcChannel, bench::bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    connection.check("basic.consume");

    std::uint64_t unacked = 0;  // the last delivery of the run, answered and not acked yet
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
            std::fprintf(stderr, "sbus-bench-floor-tuned: the broker closed the channel\n");
            return 1;
          }
          continue;
        }
        std::fprintf(stderr, "sbus-bench-floor-tuned: %s\n", bench::describe(ret).c_str());
        return 1;
      }
      if (unacked == 0) cork(fd, true);
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
      unacked = envelope.delivery_tag;
      amqp_destroy_envelope(&envelope);
      if (more_ready(c, fd, tls.enabled())) continue;
      connection.check_status(amqp_basic_ack(c, bench::kRpcChannel, unacked, 1), "ack");
      unacked = 0;
      cork(fd, false);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sbus-bench-floor-tuned: %s\n", e.what());
    return 1;
  }
}
