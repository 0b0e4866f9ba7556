// The help of `sbus`, written from the tables: the verbs (verb.hpp), the
// options (command_line.hpp) and the exit codes (exit_code.hpp).
#pragma once

#include <string>
#include <vector>

#include "client/cli/verb.hpp"

namespace sbus::cli {

// "Usage:" and one line per verb with its summary.
std::string usage_text();

// The options, as program_options prints them.
std::string options_text();

// "Exit codes:" and one line per code.
std::string exit_codes_text();

// The help of the verb that `words` name ("call", or "errors" for both
// errors verbs): their lines, the options and the exit codes; with no
// words, or words that name no verb, the help of every verb.
std::string help_text(const std::vector<std::string>& words);

// The same as JSON, for `sbus help --json`: {"verbs":[{"name", "operands",
// "needs", "summary"}...], "options":[{"name", "short", "takes_value",
// "description"}...], "exit_codes":[{"code", "name", "meaning"}...]}.
// `sbus completion bash` completes from the same tables.
JsonObject help_json(const std::vector<std::string>& words);

}  // namespace sbus::cli
