// A worker process serves the configured services through one broker.
//
// Its main thread, the connection thread, runs the loop: it reads
// deliveries (BrokerSession), decides what becomes of each (Admission),
// hands jobs to the service threads (Dispatcher), publishes the replies
// that come back through the CompletionQueue, acks, and serves heartbeats.
// It never blocks on a service: a delivery for a full service queue is
// answered `busy` or held, and the prefetch window bounds how many
// deliveries the worker holds. While it sleeps in epoll_wait(), a service
// thread that finishes takes the session's lock and publishes its reply and
// ack itself. docs/architecture.md follows a call through these parts.
#pragma once

#include <cstddef>

#include "base/crash_journal.hpp"
#include "base/replay_cache.hpp"
#include "config/config.hpp"
#include "base/worker_entry.hpp"

namespace sbus {

// Runs the worker for `config.broker_uris[broker_index]` until SIGTERM or
// SIGINT, then drains and returns an exit code. Writes kStatus* bytes to
// `status_fd` (-1: none) as its connection comes and goes.
//
// What the workers of one sbusd share, mapped by the supervisor: with a
// `journal`, a redelivered RPC that a dead worker had started is answered
// with an `interrupted` error instead of being run twice; `replay` holds the
// nonces of hmac-sha256 calls (without it, each worker keeps its own).
struct WorkerShared {
  CrashJournal* journal = nullptr;
  ReplayCache* replay = nullptr;
  WorkerHistory history;  // of the earlier runs, for sbus stats
};
int run_worker(const Config& config, std::size_t broker_index, int status_fd = -1, WorkerShared shared = {});

}  // namespace sbus
