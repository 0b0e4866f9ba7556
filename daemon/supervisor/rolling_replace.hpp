// The rolling replacement of one worker at a reload, decided as a value
// with no I/O: given the new worker's record and whether the replacement's
// deadline has passed, next_replace_step() says what the Supervisor does
// next (supervisor_reload.cpp carries it out, tests check it alone in
// rolling_replace_test.cpp).
//
// The new worker is started with WorkerHistory::replacing set: it loads
// the plugins (each from a private copy, worker/plugin_image.hpp), waits for
// every service's start(), and only then connects and consumes; a service
// that cannot load or start makes it exit with the fatal code before it
// connects. So the old worker keeps consuming until the new one consumes
// with every service, then it is told to stop (SIGTERM: basic.cancel, its
// calls in progress finish within drain_timeout, then it exits).
#pragma once

#include <string>

#include "supervisor/worker_record.hpp"

namespace sbus {

enum class ReplaceStep {
  kWait,      // the new worker is starting: the old one keeps serving
  kSwap,      // the new worker consumes: the old one drains
  kSwapLate,  // the new worker has not connected by the deadline (its broker
              // may be down, so the old one could not serve either): drain
              // the old one anyway
  kRefuse,    // the new worker gave up (fatal exit) or is gone: drop it, the
              // old one keeps serving with the settings it had
};

// `fresh` is the new worker's record, or nullptr when it no longer has one.
// A new worker that exited otherwise (a crash) is restarted with back-off
// like any worker, and waited for until the deadline.
ReplaceStep next_replace_step(const WorkerRecord* fresh, bool past_deadline);

// Why a refused replacement failed, for the log: how the new worker ended
// and what its status pipe said of the services that could not load or
// start ("exited with code 2; test.version: start failed: ..."); empty
// when nothing is known.
std::string replace_failure(const WorkerRecord* fresh);

}  // namespace sbus
