// The exit codes of `sbus`: one table for every verb, which `sbus --help`
// prints and docs/cli.md lists (tests/unit/cli_docs_test checks that the
// two agree). The numbers are part of the command line's interface: scripts
// test them, so a code keeps its number for good.
#pragma once

#include <sbus/sender.hpp>

#include <span>
#include <string_view>

namespace sbus::cli {

enum class ExitCode : int {
  kOk = 0,
  kServiceError = 1,
  kUsage = 2,
  kTimeout = 3,
  kUnreachable = 4,
};

struct ExitCodeRow {
  ExitCode code;
  std::string_view name;     // as docs/cli.md names it: "timeout"
  std::string_view meaning;  // one sentence, plain text
};

// Every exit code, in the order of their numbers.
std::span<const ExitCodeRow> exit_codes();

// What a SenderError means for the exit code: a bad address is a usage
// error, a timeout or a blocked broker a timeout (the call may still run),
// a refusal by the broker or the service's bad answer a service error, and
// anything else (connect, connection lost) no broker reachable.
ExitCode exit_code_for(const SenderError& error);

// The name of `code` in the table ("timeout").
std::string_view exit_code_name(ExitCode code);

// What went wrong in the sender, in one word that --json's errors carry as
// their "code": address, connect, publish, unroutable (no queue for the
// node), timeout, connection_lost, protocol, blocked (a broker's resource
// alarm). docs/cli.md lists them.
std::string_view code_for(const SenderError& error);

}  // namespace sbus::cli
