// Runs `sbus ARGS...` in the test's own process, with std::cout and
// std::cerr caught: for the CLI's unit tests (cli_test, cli_json_test).
#pragma once

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "client/cli/cli.hpp"
#include "client/cli/exit_code.hpp"

namespace sbus_test {

struct CliRun {
  sbus::cli::ExitCode code;
  std::string out;
  std::string err;
};

inline CliRun sbus_cli(std::vector<std::string> args) {
  args.insert(args.begin(), "sbus");
  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  std::ostringstream out;
  std::ostringstream err;
  std::streambuf* const old_out = std::cout.rdbuf(out.rdbuf());
  std::streambuf* const old_err = std::cerr.rdbuf(err.rdbuf());
  const sbus::cli::ExitCode code = sbus::cli::run_command_line(static_cast<int>(argv.size()), argv.data());
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  return {code, out.str(), err.str()};
}

}  // namespace sbus_test
