// The command line of `sbus` as given: the verb's words, its operands and
// the options, before any of them is checked against a broker or a file.
// Verbs get what they need from it through an Invocation (verb.hpp).
#pragma once

#include <boost/program_options/options_description.hpp>

#include <optional>
#include <string>
#include <vector>

#include "client/cli/exit_code.hpp"

namespace sbus::cli {

struct CommandLine {
  std::string command;             // the first word: "call", "errors"
  std::vector<std::string> words;  // every word after it
  std::string config_path;
  std::vector<std::string> brokers;
  std::string secret_file;
  bool legacy_short_secret = false;
  std::string exchange;
  std::string error_queue;
  std::string token_mode;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  bool tls_insecure = false;
  double timeout_seconds = 30;
  int retry = 0;
  bool smart_route = false;
  bool version = false;
  bool help = false;
};

// The options every verb takes, bound to the fields of `into`, which must
// outlive the description.
boost::program_options::options_description cli_options(CommandLine* into);

// Parses argv into `line`; on a malformed command line, prints why with the
// usage to stderr and returns kUsage.
std::optional<ExitCode> parse_command_line(int argc, const char* const* argv, CommandLine* line);

}  // namespace sbus::cli
