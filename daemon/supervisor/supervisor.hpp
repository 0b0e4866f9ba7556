// The supervisor process: forks one worker per broker (each loads the worker
// module, base/worker_entry.hpp), restarts the ones that die, reloads the
// config on SIGHUP and stops everything on SIGTERM or SIGINT. It never runs
// plugin code nor maps the libraries that serving needs: plugin checks run
// in throwaway workers.
//
// Signals are blocked and read from a signalfd in a poll loop; each turn
// handles, in this order: exited workers (and a reload's check child), a
// stop, a reload, then worker status reports and due restarts.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "supervisor/config_check.hpp"

namespace sbus {

// Runs until stopped; returns the process exit code (0 after a clean stop).
// `path` and `overrides` are read again on every reload, in a child process
// (config_check.hpp) given up on after `check_timeout`: meanwhile the loop
// goes on (signals, restarts), and a check that fails or is given up on
// leaves the running config as it is.
int run_supervisor(const std::string& path, const ConfigOverrides& overrides, Config config,
                   std::chrono::milliseconds check_timeout = kDefaultCheckTimeout);

// Loads every plugin of `config` in a throwaway worker process and returns
// its problems (empty when all load, one saying so when it takes longer
// than `timeout`). With `run_start`, each service is also created and its
// start() and stop() run there, as a worker would.
std::vector<std::string> check_plugins_isolated(const Config& config,
                                                std::chrono::milliseconds timeout = kDefaultCheckTimeout,
                                                bool run_start = false);

}  // namespace sbus
