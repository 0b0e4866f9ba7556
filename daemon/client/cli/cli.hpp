// The `sbus` command line, whole: main() is this one call, so that the unit
// tests can run a command line without a process of its own.
#pragma once

#include "client/cli/exit_code.hpp"

namespace sbus::cli {

// Parses argv, finds the verb in the table (verb.hpp), checks its operands
// and the sender's options, and runs it. What it prints goes to std::cout and
// std::cerr (sbus stats: stdout through printf).
ExitCode run_command_line(int argc, const char* const* argv);

}  // namespace sbus::cli
