// RemoteService: what a worker runs in place of an isolated service's
// plugin (docs/isolation.md). To the worker's ServiceRunner it is a
// LoadedService like any other, a service record of the C ABI
// (sbus/plugin.h) whose entry points sbusd itself provides: the same queue,
// deadlines, outbox, replies and acks. Each on_call, on_message or
// on_event passes the request (with its message id, deadline, caller and
// topic) over the isolated service's socket (isolated_channel.hpp) to its
// process, which runs the plugin through the same loader and host table,
// and waits for the answer.
//
// What a failure of that process costs is this service's call in progress
// only:
// - the process ends during a call (a crash, memory_limit): the call is
//   answered `interrupted`; a message or event fails, so that its retries
//   and the error queue apply as to a message whose handler failed;
// - the call runs kHangGrace past its deadline: the process is killed
//   (SIGKILL; the supervisor starts it again) and the call answered
//   `deadline_exceeded`;
// - no process listens (starting, restarting, or given up on): the
//   service thread tries again for kConnectWait (or up to the deadline),
//   then a call is answered `service_unavailable`.
// What the handler sends is held and released in the isolated process,
// before it answers; a release that lost the broker there is handed to
// the worker's outbox as its own failure, so that the delivery is not acked
// (ServiceRunner::release_held).
//
// The entry points run on the service's thread; isolated_pid() on any.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>

#include "config/config.hpp"
#include "worker/plugin_loader.hpp"

namespace sbus {

inline constexpr std::chrono::milliseconds kHangGrace{1000};
inline constexpr std::chrono::milliseconds kConnectWait{5000};

// The stand-in a worker of broker `broker_index` runs for the isolated
// `service`: a LoadedService with no library, reaching the process the
// supervisor (this process's parent) started for it.
LoadedService remote_service_for(const ServiceConfig& service, std::size_t broker_index);

// The pid of the isolated process the stand-in of service `name`
// (CATEGORY.SERVICE) is connected to now; 0 when none (for sbus.stats).
pid_t isolated_pid(const std::string& name);

}  // namespace sbus
