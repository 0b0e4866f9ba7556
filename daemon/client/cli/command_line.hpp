// The command line of `sbus` as given: the verb's words, its operands and
// the options, before any of them is checked against a broker or a file.
// Verbs get what they need from it through an Invocation (verb.hpp).
#pragma once

#include <boost/program_options/options_description.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "client/cli/exit_code.hpp"
#include "client/cli/output.hpp"

namespace sbus::cli {

struct CommandLine {
  std::string command;             // the first word: "call", "errors"
  std::vector<std::string> words;  // every word after it
  std::string config_path;
  std::vector<std::string> brokers;
  std::string secret_file;
  bool legacy_short_secret = false;
  std::string caller;    // --caller: sign as this caller identity
  std::string key_file;  // --key-file: its key
  std::string exchange;
  std::string error_queue;
  std::string token_mode;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  bool tls_insecure = false;
  double timeout_seconds = 30;
  std::string ttl;    // for `send`: as written, "30s"; empty: none
  std::string delay;  // for `send`: as written, "90s"; empty: none
  std::string at;     // for `send`: an RFC 3339 time; empty: none
  std::string id;     // --id: the message id (idempotency key); empty: a fresh one
  int retry = 0;
  bool smart_route = false;
  bool json = false;
  double wait_seconds = 2;              // for `discover`
  std::vector<std::string> ping_nodes;  // for `discover --ping`  // --json: JSON on stdout and stderr (output.hpp)
  bool version = false;
  bool help = false;
};

// The options every verb takes, bound to the fields of `into`, which must
// outlive the description.
boost::program_options::options_description cli_options(CommandLine* into);

// A duration as `--ttl` takes it: a positive number with the unit ms, s, m
// or h ("500ms", "30s", "1.5m"), or a plain number of seconds like
// `--timeout`; std::nullopt when it is not one, or under a millisecond.
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text);

// Whether argv asks for --json: known before the command line is parsed,
// so that even a malformed one is said in JSON.
bool asks_for_json(int argc, const char* const* argv);

// Parses argv into `line`; on a malformed command line, prints why with the
// usage to stderr (in JSON: the error alone) and returns kUsage.
std::optional<ExitCode> parse_command_line(int argc, const char* const* argv, CommandLine* line,
                                           const Output& output = Output());

}  // namespace sbus::cli
