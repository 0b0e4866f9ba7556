// The contract between the supervisor and the worker module,
// sbusd-worker.so, which holds the code of a worker process.
//
// sbusd links none of the libraries that serving needs (rabbitmq-c,
// OpenSSL, libxml2, Boost.DLL) and never loads a plugin. Each worker is a
// fork of the supervisor that loads this module and calls one of its entry
// points with the config the supervisor loaded; so the supervisor stays
// small and a worker maps only what it uses.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sbus {

struct Config;
class CrashJournal;
class ReplayCache;

// Exit codes of a worker process.
inline constexpr int kWorkerExitOk = 0;
inline constexpr int kWorkerExitError = 1;
// A problem no restart can fix (a plugin that cannot load or start).
inline constexpr int kWorkerExitFatal = 2;

// What a worker tells its supervisor through the status pipe, one byte each.
inline constexpr char kStatusConnected = 'U';
inline constexpr char kStatusDisconnected = 'D';
// Followed by "CATEGORY.SERVICE: REASON" and a line feed: a service that
// could not load or start; the worker serves the others.
inline constexpr char kStatusUnavailable = 'X';
// Followed by the worker's counters and a line feed, about once a second
// and when its connection comes or goes: Prometheus samples without the
// node and broker labels (the supervisor adds them), one per sample
// separated by kMetricsSeparator (a label value never holds one, nor a line
// feed: they are escaped). The supervisor keeps the last one.
inline constexpr char kStatusMetrics = 'M';
inline constexpr char kMetricsSeparator = '\x1f';

// What the supervisor knows of the earlier runs of a worker for the same
// broker; `sbus stats` shows it, so that counters reset by a restart say so.
// And whether this run replaces a running worker.
struct WorkerHistory {
  std::uint32_t restarts = 0;          // runs before this one
  std::int64_t last_exit_unix_ms = 0;  // when the last run ended; 0: none did
  char last_exit[96] = {};             // how ("killed by signal 11 (Segmentation fault)")
  // A reload's rolling replacement (rolling_replace.hpp): the worker exits
  // with kWorkerExitFatal, before it connects, when any service cannot load
  // or start, so that the worker it would replace keeps serving them all.
  bool replacing = false;
};

}  // namespace sbus

extern "C" {
// Serves config->broker_uris[broker_index] until SIGTERM or SIGINT (see
// worker.hpp); returns the process's exit code.
int sbus_worker_serve(const sbus::Config* config, std::size_t broker_index, int status_fd, sbus::CrashJournal* journal,
                      sbus::ReplayCache* replay, const sbus::WorkerHistory* history);
// Serves config->services[service_index], an isolated service, for the
// workers of config->broker_uris[broker_index] (worker/isolated_process.hpp)
// until SIGTERM or SIGINT; returns the process's exit code.
int sbus_isolated_serve(const sbus::Config* config, std::size_t broker_index, std::size_t service_index, int status_fd,
                        sbus::CrashJournal* journal);
// Loads every plugin of `config` and writes one line per problem to
// `out_fd`; with `run_start` non-zero, also creates each service and runs its
// start() and stop(). Returns 0 when all is well, 1 otherwise.
int sbus_worker_check(const sbus::Config* config, int out_fd, int run_start);
// The supervisor's journal relay (the socket of its relay process), which
// the worker's log sends its entries to when they go to the journal,
// instead of loading the journal module itself. Called before
// sbus_worker_serve(), only when the supervisor has a relay.
void sbus_worker_use_journal_relay(int fd);
}
