#include "client/cli/usage.hpp"

#include <algorithm>
#include <iostream>
#include <sstream>

#include "client/cli/runners.hpp"

namespace sbus::cli {
namespace {

// Where the summaries start, as the usage has always had them.
constexpr std::size_t kSummaryColumn = 53;
// Where the exit codes' meanings start, and the width they are wrapped to.
constexpr std::size_t kMeaningColumn = 20;
constexpr std::size_t kWidth = 80;

// `text` wrapped at spaces to kWidth, each line after the first indented to
// `column`.
std::string wrapped(std::string_view text, std::size_t column) {
  std::string out;
  std::size_t room = kWidth - column;
  while (text.size() > room) {
    std::size_t cut = text.rfind(' ', room);
    if (cut == std::string_view::npos || cut == 0) cut = text.find(' ');
    if (cut == std::string_view::npos) break;
    out += std::string(text.substr(0, cut)) + "\n" + std::string(column, ' ');
    text.remove_prefix(cut + 1);
  }
  return out + std::string(text);
}

std::string verb_line(const Verb& verb) {
  std::string line = "  sbus " + std::string(verb.name);
  if (!verb.operands.empty()) line += " " + std::string(verb.operands);
  if (verb.needs != Needs::kNothing) line += " [options]";
  line.append(line.size() < kSummaryColumn ? kSummaryColumn - line.size() : 1, ' ');
  return line + std::string(verb.summary) + "\n";
}

}  // namespace

std::string usage_text() {
  std::string text = "Usage:\n  sbus --help | --version\n";
  for (const Verb& verb : verbs()) text += verb_line(verb);
  return text;
}

std::string options_text() {
  CommandLine unused;  // the description binds its values to one
  std::ostringstream text;
  text << cli_options(&unused);
  return text.str();
}

std::string exit_codes_text() {
  std::string text = "Exit codes:\n";
  for (const ExitCodeRow& row : exit_codes()) {
    std::string line = "  " + std::to_string(static_cast<int>(row.code)) + "  " + std::string(row.name);
    line.append(kMeaningColumn - std::min(line.size(), kMeaningColumn - 1), ' ');
    text += line + wrapped(row.meaning, kMeaningColumn) + "\n";
  }
  return text;
}

std::string help_text(const std::vector<std::string>& words) {
  std::vector<const Verb*> named;
  if (!words.empty()) {
    const Verb* verb = find_verb(words[0], {words.begin() + 1, words.end()});
    named = verb != nullptr ? std::vector<const Verb*>{verb} : verbs_named(words[0]);
  }
  std::string text = named.empty() ? usage_text() : "Usage:\n";
  for (const Verb* verb : named) text += verb_line(*verb);
  return text + options_text() + "\n" + exit_codes_text();
}

ExitCode run_help(const Invocation& invocation) {
  std::cout << help_text(invocation.operands);
  return ExitCode::kOk;
}

}  // namespace sbus::cli
