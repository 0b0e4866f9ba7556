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
//   sbus-bench-floor-tuned PORT QUEUE [PREFETCH [TLS_DIR]]   (floor_serving.hpp)
//
// Runs until killed (SIGTERM) or until the broker closes the connection.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstdio>
#include <exception>

#include "floor_serving.hpp"

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
  const char* const program = "sbus-bench-floor-tuned";
  const std::optional<bench::FloorArgs> args = bench::parse_floor_args(program, argc, argv);
  if (!args) return 2;
  try {
    bench::RawConnection connection(args->port, args->tls);
    amqp_connection_state_t c = connection.get();
    const int fd = connection.fd();
    bench::start_consuming(connection, *args);
    std::uint64_t unacked = 0;  // the last delivery of the run, answered and not acked yet
    for (;;) {
      amqp_envelope_t envelope;
      if (!bench::next_delivery(connection, &envelope, program)) return 1;
      if (unacked == 0) cork(fd, true);
      bench::echo_reply(connection, envelope);
      unacked = envelope.delivery_tag;
      amqp_destroy_envelope(&envelope);
      if (more_ready(c, fd, args->tls.enabled())) continue;
      connection.check_status(amqp_basic_ack(c, bench::kRpcChannel, unacked, 1), "ack");
      unacked = 0;
      cork(fd, false);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}
