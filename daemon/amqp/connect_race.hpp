// Opening the first of several brokers that completes the AMQP handshake,
// in the way of happy eyeballs (RFC 8305): the first candidate gets a head
// start, then the next one is tried beside it, and so on, so a broker that
// hangs (frozen by SIGSTOP, its kernel still completing the TCP connect)
// costs about the head start instead of the whole connect timeout. A
// candidate that fails at once lets the next start at once.
//
// Each attempt runs on a thread of its own, which owns its connection until
// the race hands the winner over. The losers are not waited for: a thread
// still stuck in a handshake finishes within ConnectOptions::connect_timeout
// by itself and closes what it opened. Called from any one thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "amqp/amqp_connection.hpp"
#include "base/broker_uri.hpp"

namespace sbus {

inline constexpr std::chrono::milliseconds kConnectHeadStart{250};

struct RaceWinner {
  AmqpConnection connection;
  std::size_t index = 0;  // into the candidates
};

// Opens the candidates, tried in their order, with `head_start` between
// one attempt and the next. Returns the first that connected, or nothing;
// each failure adds a line "\n  WHAT" to `failures` (in the order of the
// candidates).
std::optional<RaceWinner> open_first(const std::vector<BrokerUri>& candidates, const ConnectOptions& options,
                                     std::chrono::milliseconds head_start, std::string* failures);

}  // namespace sbus
