#include "client/cli/cli.hpp"

#include <cmath>
#include <iostream>
#include <string>

#include "base/delay.hpp"
#include "client/cli/command_line.hpp"
#include "client/cli/sender_options.hpp"
#include "client/cli/usage.hpp"
#include "client/cli/verb.hpp"

namespace sbus::cli {
namespace {

// --delay and --at: for send and publish only, one of them, read before any connection
// is made. The time left is checked again by the sender (Sender::send).
std::optional<ExitCode> check_deferral(const CommandLine& line, const Verb& verb, const Output& output) {
  if (line.delay.empty() && line.at.empty()) return std::nullopt;
  if (verb.name != "send" && verb.name != "publish") {
    return output.fail(ExitCode::kUsage, "usage", "--delay and --at are for send and publish only");
  }
  if (!line.delay.empty() && !line.at.empty()) {
    return output.fail(ExitCode::kUsage, "usage", "give --delay or --at, not both");
  }
  std::string error;
  if (!line.delay.empty() && !parse_delay(line.delay, &error)) {
    return output.fail(ExitCode::kUsage, "usage", "--delay: " + error + "; nothing sent");
  }
  if (!line.at.empty()) {
    const auto at = parse_rfc3339(line.at, &error);
    if (!at || !delay_until(*at, std::chrono::system_clock::now(), &error)) {
      return output.fail(ExitCode::kUsage, "usage", "--at: " + error + "; nothing sent");
    }
  }
  return std::nullopt;
}

// "call NODE.CATEGORY.SERVICE 'JSON'", or for a word that begins several
// verbs, "errors list NODE or errors requeue NODE".
std::string synopsis_of(const std::vector<const Verb*>& verbs) {
  std::string text;
  for (const Verb* verb : verbs) {
    if (!text.empty()) text += " or ";
    text += std::string(verb->name) + (verb->operands.empty() ? "" : " ") + std::string(verb->operands);
  }
  return text;
}

// The verb `line` names with a fitting number of operands (given back in
// `operands`); nullptr, said on stderr with the usage, when there is none.
const Verb* verb_of(const CommandLine& line, const Output& output, std::vector<std::string>* operands) {
  const Verb* verb = find_verb(line.command, line.words);
  if (verb != nullptr) {
    operands->assign(line.words.begin() + static_cast<std::ptrdiff_t>(name_words(*verb) - 1), line.words.end());
    const OperandCount count = operand_count(verb->operands);
    if (operands->size() >= count.least && operands->size() <= count.most) return verb;
  }
  const std::vector<const Verb*> named = verbs_named(line.command);
  output.fail(ExitCode::kUsage, "usage", named.empty() ? "no verb " + line.command : "expected " + synopsis_of(named));
  output.note(usage_text());
  return nullptr;
}

// The options that every verb with a broker checks the same way; kUsage
// when one is wrong.
std::optional<ExitCode> check_common_options(const CommandLine& line, const Verb& verb, const Output& output) {
  if (!(line.timeout_seconds > 0) || !std::isfinite(line.timeout_seconds)) {
    return output.fail(ExitCode::kUsage, "usage", "--timeout must be a positive number of seconds");
  }
  if (!line.ttl.empty() && !parse_duration(line.ttl)) {
    return output.fail(ExitCode::kUsage, "usage",
                       "--ttl must be a duration from 1ms to 24h, as 30s or 500ms: " + line.ttl);
  }
  if (!line.ttl.empty() && verb.name != "send") {
    return output.fail(ExitCode::kUsage, "usage", "--ttl is for send only (a call's deadline is its --timeout)");
  }
  if (!line.id.empty() && verb.name != "call" && verb.name != "send" && verb.name != "publish") {
    return output.fail(ExitCode::kUsage, "usage", "--id is for call, send and publish only");
  }
  if ((line.wait_seconds != 2 || !line.ping_nodes.empty()) && verb.name != "discover") {
    return output.fail(ExitCode::kUsage, "usage", "--wait and --ping are for discover only");
  }
  return std::nullopt;
}

}  // namespace

ExitCode run_command_line(int argc, const char* const* argv) {
  const Output output(asks_for_json(argc, argv));
  CommandLine line;
  if (const std::optional<ExitCode> failed = parse_command_line(argc, argv, &line, output)) return *failed;
  if (line.version) {
    output.result(JsonObject().text("version", SBUS_VERSION), "sbus " SBUS_VERSION "\n");
    return ExitCode::kOk;
  }
  if (line.help) {
    std::vector<std::string> words = line.words;
    if (!line.command.empty()) words.insert(words.begin(), line.command);
    output.result(help_json(words), help_text(words));
    return ExitCode::kOk;
  }
  if (line.command.empty()) {
    // A person gets the usage alone, as ever.
    if (output.json()) return output.fail(ExitCode::kUsage, "usage", "no verb given");
    output.note(usage_text() + options_text());
    return ExitCode::kUsage;
  }
  Invocation invocation{line, output, {}, {}, {}};
  const Verb* verb = verb_of(line, output, &invocation.operands);
  if (verb == nullptr) return ExitCode::kUsage;
  if (verb->needs == Needs::kNothing) return verb->run(invocation);
  if (const std::optional<ExitCode> failed = check_common_options(line, *verb, output)) return *failed;
  if (const std::optional<ExitCode> failed = check_deferral(line, *verb, output)) return *failed;
  invocation.timeout = std::chrono::milliseconds(static_cast<long long>(line.timeout_seconds * 1000));
  if (const std::optional<ExitCode> failed = build_sender_options(line, *verb, &invocation.sender, output)) {
    return *failed;
  }
  return verb->run(invocation);
}

}  // namespace sbus::cli
