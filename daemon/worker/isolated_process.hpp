// The process of an isolated service (docs/isolation.md): forked by the
// supervisor like a worker, one per broker and isolated service, it loads
// that service's plugin alone, starts it, listens on the service's socket
// (isolated_channel.hpp) and runs each request the workers of its broker
// send, one at a time, answering it on the same connection. It never
// connects to a broker: the worker keeps the node's queue, the replies and
// the acks.
//
// Each request runs in a crash-journal slot of its own, so that the
// supervisor, reaping a process that crashed, was killed for its
// memory_limit or for a hung call, knows it died during a call and starts
// it again at once (restart_policy.hpp). SIGTERM (the supervisor's stop or
// reload) ends it once the request running has been answered.
#pragma once

#include <cstddef>

namespace sbus {

struct Config;
class CrashJournal;

// Serves config.services[service_index] for config.broker_uris[broker_index]
// until SIGTERM or SIGINT; returns the process's exit code. A plugin that
// cannot load or start is reported on `status_fd` (kStatusUnavailable)
// and ends it with kWorkerExitFatal.
int run_isolated(const Config& config, std::size_t broker_index, std::size_t service_index, int status_fd,
                 CrashJournal* journal);

}  // namespace sbus
