// The load patterns, written once for both FloorClient and SbusClient
// (anything with roundtrip, issue, complete and in_flight).
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>

#include "run_stats.hpp"

namespace bench {

using Clock = std::chrono::steady_clock;
inline constexpr std::chrono::milliseconds kReplyTimeout{10000};

inline double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// One call at a time for `duration`.
template <class Client>
RunStats run_sequential(Client& client, std::chrono::duration<double> duration) {
  RunStats stats;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(duration);
  auto now = start;
  while (now < end) {
    stats.latencies_ns.push_back(client.roundtrip(kReplyTimeout));
    ++stats.calls;
    now = Clock::now();
  }
  stats.seconds = seconds_between(start, now);
  return stats;
}

// Sequential calls to two clients in turn: `burst` calls to one, then
// `burst` to the other (which of them goes first alternates), until
// `duration` has passed. Each side's stats: its calls, their latencies, and
// as its seconds the time spent in its own bursts. On a shared machine a
// slow spell lasts far longer than a burst, so it lands on both sides
// alike, where windows taken one after the other give it to one side.
template <class A, class B>
std::pair<RunStats, RunStats> run_interleaved(A& a, B& b, std::chrono::duration<double> duration, int burst) {
  std::pair<RunStats, RunStats> stats;
  auto run_burst = [burst](auto& client, RunStats& side) {
    const auto start = Clock::now();
    for (int i = 0; i < burst; ++i) side.latencies_ns.push_back(client.roundtrip(kReplyTimeout));
    // A client whose work goes on after its roundtrip answered (an event
    // still to be handled) finishes it inside its burst.
    if constexpr (requires { client.settle(); }) client.settle();
    side.calls += static_cast<std::uint64_t>(burst);
    side.burst_seconds.push_back(seconds_between(start, Clock::now()));
    side.seconds += side.burst_seconds.back();
  };
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(duration);
  for (int round = 0; round == 0 || Clock::now() < end; ++round) {
    if (round % 2 == 0) {
      run_burst(a, stats.first);
      run_burst(b, stats.second);
    } else {
      run_burst(b, stats.second);
      run_burst(a, stats.first);
    }
  }
  return stats;
}

// `depth` calls in flight on the client's one connection: a new call as
// each reply comes, for `duration` (or until `max_calls` replies), then the
// calls in flight are drained. Latency is from issue to reply.
template <class Client>
RunStats run_pipelined(Client& client, int depth, std::chrono::duration<double> duration,
                       std::uint64_t max_calls = UINT64_MAX) {
  RunStats stats;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(duration);
  std::uint64_t issued = 0;
  for (int i = 0; i < depth && issued < max_calls; ++i, ++issued) client.issue();
  auto now = start;
  while (client.in_flight() > 0) {
    auto latency = client.complete(kReplyTimeout);
    if (!latency) throw std::runtime_error("no reply within " + std::to_string(kReplyTimeout.count()) + " ms");
    stats.latencies_ns.push_back(*latency);
    ++stats.calls;
    now = Clock::now();
    if (now < end && issued < max_calls) {
      client.issue();
      ++issued;
    }
  }
  stats.seconds = seconds_between(start, now);
  return stats;
}

}  // namespace bench
