// sbus: call, send to and ping services on the bus from the command line.
// The verbs are the table of client/cli/verb_table.cpp, the exit codes that
// of client/cli/exit_code.cpp; `sbus --help` lists both, as does docs/cli.md.
#include "client/cli/cli.hpp"

int main(int argc, char** argv) {
  return static_cast<int>(sbus::cli::run_command_line(argc, argv));
}
