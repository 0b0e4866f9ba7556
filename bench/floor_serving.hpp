// What both floor servers (floor_server.cpp, the ack-each floor, and
// floor_server_tuned.cpp) do alike: their command line, consuming the queue,
// reading the next delivery and echoing it, so that the two differ only in
// how they ack and write.
//
//   PROGRAM PORT QUEUE [PREFETCH [TLS_DIR]]
//
// With TLS_DIR (tests/tls/make_certs' files): over mutual TLS, through
// rabbitmq-c's OpenSSL socket, PORT being the broker's TLS port.
#pragma once

#include <amqp.h>

#include <optional>
#include <string>

#include "raw_amqp.hpp"

namespace bench {

struct FloorArgs {
  int port = 0;
  std::string queue;
  int prefetch = 64;
  TlsFiles tls;
};

// The command line; nullopt, after printing the usage naming `program`,
// when it is wrong.
std::optional<FloorArgs> parse_floor_args(const char* program, int argc, char** argv);

// Declares QUEUE as sbusd declares a node's queue, sets the prefetch and
// consumes it with acks.
void start_consuming(RawConnection& connection, const FloorArgs& args);

// Waits for the next delivery into *envelope (the caller destroys it).
// False, the reason printed naming `program`, when the broker closed the
// channel or the connection failed.
bool next_delivery(RawConnection& connection, amqp_envelope_t* envelope, const char* program);

// Publishes the delivery's body unchanged to its reply_to through the
// default exchange, with its correlation id; nothing for a message (no
// reply_to).
void echo_reply(RawConnection& connection, const amqp_envelope_t& envelope);

}  // namespace bench
