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

// --delay and --at: for send only, one of them, read before any connection
// is made. The time left is checked again by the sender (Sender::send).
std::optional<ExitCode> check_deferral(const CommandLine& line, const Verb& verb) {
  if (line.delay.empty() && line.at.empty()) return std::nullopt;
  if (verb.name != "send") {
    std::cerr << "sbus: --delay and --at are for send only\n";
    return ExitCode::kUsage;
  }
  if (!line.delay.empty() && !line.at.empty()) {
    std::cerr << "sbus: give --delay or --at, not both\n";
    return ExitCode::kUsage;
  }
  std::string error;
  if (!line.delay.empty() && !parse_delay(line.delay, &error)) {
    std::cerr << "sbus: --delay: " << error << "; nothing sent\n";
    return ExitCode::kUsage;
  }
  if (!line.at.empty()) {
    const auto at = parse_rfc3339(line.at, &error);
    if (!at || !delay_until(*at, std::chrono::system_clock::now(), &error)) {
      std::cerr << "sbus: --at: " << error << "; nothing sent\n";
      return ExitCode::kUsage;
    }
  }
  return std::nullopt;
}

}  // namespace
namespace {

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
const Verb* verb_of(const CommandLine& line, std::vector<std::string>* operands) {
  const Verb* verb = find_verb(line.command, line.words);
  if (verb != nullptr) {
    operands->assign(line.words.begin() + static_cast<std::ptrdiff_t>(name_words(*verb) - 1), line.words.end());
    const OperandCount count = operand_count(verb->operands);
    if (operands->size() >= count.least && operands->size() <= count.most) return verb;
  }
  const std::vector<const Verb*> named = verbs_named(line.command);
  if (named.empty()) {
    std::cerr << "sbus: no verb " << line.command << "\n" << usage_text();
  } else {
    std::cerr << "sbus: expected " << synopsis_of(named) << "\n" << usage_text();
  }
  return nullptr;
}

}  // namespace

ExitCode run_command_line(int argc, const char* const* argv) {
  CommandLine line;
  if (const std::optional<ExitCode> failed = parse_command_line(argc, argv, &line)) return *failed;
  if (line.version) {
    std::cout << "sbus " SBUS_VERSION "\n";
    return ExitCode::kOk;
  }
  if (line.help) {
    std::vector<std::string> words = line.words;
    if (!line.command.empty()) words.insert(words.begin(), line.command);
    std::cout << help_text(words);
    return ExitCode::kOk;
  }
  if (line.command.empty()) {
    std::cerr << usage_text() << options_text();
    return ExitCode::kUsage;
  }
  Invocation invocation{line, {}, {}, {}};
  const Verb* verb = verb_of(line, &invocation.operands);
  if (verb == nullptr) return ExitCode::kUsage;
  if (verb->needs == Needs::kNothing) return verb->run(invocation);
  if (!(line.timeout_seconds > 0) || !std::isfinite(line.timeout_seconds)) {
    std::cerr << "sbus: --timeout must be a positive number of seconds\n";
    return ExitCode::kUsage;
  }
  invocation.timeout = std::chrono::milliseconds(static_cast<long long>(line.timeout_seconds * 1000));
  if (!line.ttl.empty() && !parse_duration(line.ttl)) {
    std::cerr << "sbus: --ttl must be a duration from 1ms to 24h, as 30s or 500ms: " << line.ttl << "\n";
    return ExitCode::kUsage;
  }
  if (!line.ttl.empty() && verb->name != "send") {
    std::cerr << "sbus: --ttl is for send only (a call's deadline is its --timeout)\n";
    return ExitCode::kUsage;
  }
  if (const std::optional<ExitCode> failed = check_deferral(line, *verb)) return *failed;
  if (const std::optional<ExitCode> failed = build_sender_options(line, *verb, &invocation.sender)) return *failed;
  return verb->run(invocation);
}

}  // namespace sbus::cli
