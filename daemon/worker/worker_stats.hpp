// What `sbus stats` shows of a worker (the sbus.stats call, answered by
// the worker itself): its counters, and their JSON (see the README, "sbus
// stats"). Counted and written on the thread that holds the broker
// session's lock.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/broker_uri.hpp"
#include "base/metrics_catalog.hpp"
#include "base/worker_entry.hpp"
#include "config/config.hpp"
#include "worker/broker_session.hpp"
#include "worker/dispatcher.hpp"
#include "worker/peer_watch.hpp"

namespace sbus {

// Of one service (by runner), counted in Worker::finish() and by refusals.
struct ServiceStats {
  std::uint64_t handled = 0;       // calls answered and messages done
  std::uint64_t failed = 0;        // answered with an error, or moved to the error queue
  std::uint64_t refused_busy = 0;  // calls answered `busy`: over queue_len or queue_bytes
  std::uint64_t held = 0;
  // Not run: the deadline had passed when the worker read it or when its
  // turn came (a call answered `deadline_exceeded`, a message acked).
  std::uint64_t expired = 0;  // messages moved to the hold queue for the same reason
  // Deliveries whose message id was handled already (HandledStore): acked,
  // or a call answered with its kept reply, not run again.
  std::uint64_t duplicates = 0;
  std::chrono::nanoseconds busy{0};
  // The latency histogram of sbus_service_duration_seconds: runs whose busy
  // time fell in each of kDurationBuckets (not cumulative), and above them.
  std::array<std::uint64_t, kDurationBuckets.size() + 1> durations{};
};

struct WorkerStats {
  using Clock = std::chrono::steady_clock;
  std::vector<ServiceStats> services;  // by runner
  // Deliveries that could not be handled (moved to the error queue), by code.
  std::map<std::string, std::uint64_t> refused;
  const Clock::time_point started_at = Clock::now();
  Clock::time_point connected_at{};
  std::uint64_t connects = 0;
};

// Everything stats_json() reports, as the worker holds it.
struct StatsSources {
  const Config& config;
  const BrokerUri& uri;
  const WorkerHistory& history;  // of the earlier runs
  const WorkerStats& counters;
  const SessionStats& session;
  Dispatcher& services;
  const std::map<std::string, std::string>& unavailable;
  const PeerWatch* peers;  // may be null
};

// This worker, its connection and each of its services, as JSON.
std::string stats_json(const StatsSources& sources);

// Counts one run of `busy` in the histogram of `stats`.
void observe_duration(ServiceStats& stats, std::chrono::nanoseconds busy);

// The same counters as Prometheus samples for the supervisor
// (kStatusMetrics in base/worker_entry.hpp): lines without the node and
// broker labels, separated by kMetricsSeparator. `in_flight` is the
// deliveries read and not yet acknowledged.
std::string metrics_report(const StatsSources& sources, std::size_t in_flight);

}  // namespace sbus
