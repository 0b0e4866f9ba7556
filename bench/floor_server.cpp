// sbus-bench-floor: the floor of the benchmark, a minimal rabbitmq-c echo
// server. It consumes QUEUE (bound to the py-servicebus exchange, as a
// node's queue is) with a prefetch window, publishes each body unchanged to
// its reply_to through the default exchange with its correlation_id, and
// acks after the publish: the same reply path as sbusd, with no parsing, no
// token and no thread hand-off. A delivery without reply_to (a message) is
// only acked.
//
//   sbus-bench-floor PORT QUEUE [PREFETCH [TLS_DIR]]   (floor_serving.hpp)
//
// Runs until killed (SIGTERM) or until the broker closes the connection.
#include <cstdio>
#include <exception>

#include "floor_serving.hpp"

int main(int argc, char** argv) {
  const char* const program = "sbus-bench-floor";
  const std::optional<bench::FloorArgs> args = bench::parse_floor_args(program, argc, argv);
  if (!args) return 2;
  try {
    bench::RawConnection connection(args->port, args->tls);
    bench::start_consuming(connection, *args);
    for (;;) {
      amqp_envelope_t envelope;
      if (!bench::next_delivery(connection, &envelope, program)) return 1;
      bench::echo_reply(connection, envelope);
      connection.check_status(amqp_basic_ack(connection.get(), bench::kRpcChannel, envelope.delivery_tag, 0), "ack");
      amqp_destroy_envelope(&envelope);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}
