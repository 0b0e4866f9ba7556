// The supervisor process: forks one worker per broker, restarts the ones
// that die, and stops them all on SIGTERM or SIGINT. It never runs plugin
// code; the plugin check before start runs in a throwaway child.
//
// Signals are blocked and read from a signalfd in the supervisor's loop;
// each turn reaps exited workers first, then handles a stop.
#pragma once

#include "config/config.hpp"

namespace sbus {

// Runs until stopped; returns the process exit code (0 after a clean stop).
int run_supervisor(const Config& config);

// Loads every plugin of `config` in a forked child and returns its problems
// (empty when all load).
std::vector<std::string> check_plugins_isolated(const Config& config);

}  // namespace sbus
