// The supervisor process: forks one worker per broker (each loads the worker
// module, worker/worker_module.hpp), restarts the ones that die, reloads the
// config on SIGHUP and stops everything on SIGTERM or SIGINT. It never runs
// plugin code nor maps the libraries that serving needs: plugin checks run
// in throwaway workers.
//
// Signals are blocked and read from a signalfd in a poll loop; each turn
// handles, in this order: exited workers, a stop, a reload, then worker
// status reports and due restarts.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace sbus {

// Runs until stopped; returns the process exit code (0 after a clean stop).
// `path` and `overrides` are read again on every reload.
int run_supervisor(const std::string& path, const ConfigOverrides& overrides, Config config);

// Loads every plugin of `config` in a throwaway worker process and returns
// its problems (empty when all load). With `run_start`, each service is also
// created and its start() and stop() run there, as a worker would.
std::vector<std::string> check_plugins_isolated(const Config& config, bool run_start = false);

}  // namespace sbus
