#include "client/cli/usage.hpp"

#include <algorithm>
#include <iostream>
#include <sstream>

#include <boost/program_options.hpp>

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

JsonObject help_json(const std::vector<std::string>& words) {
  std::vector<const Verb*> named;
  if (!words.empty()) {
    const Verb* verb = find_verb(words[0], {words.begin() + 1, words.end()});
    named = verb != nullptr ? std::vector<const Verb*>{verb} : verbs_named(words[0]);
  }
  if (named.empty()) {
    for (const Verb& verb : verbs()) named.push_back(&verb);
  }
  std::vector<JsonObject> verb_rows;
  for (const Verb* verb : named) {
    static constexpr std::string_view kNeeds[] = {"nothing", "broker", "secret"};
    JsonObject row;
    row.text("name", verb->name).text("operands", verb->operands);
    row.text("needs", kNeeds[static_cast<int>(verb->needs)]).text("summary", verb->summary);
    verb_rows.push_back(std::move(row));
  }
  std::vector<JsonObject> option_rows;
  CommandLine unused;  // the description binds its values to one
  const boost::program_options::options_description described = cli_options(&unused);
  for (const auto& option : described.options()) {
    JsonObject row;
    row.text("name", "--" + option->long_name());
    const std::string short_name =
        option->canonical_display_name(boost::program_options::command_line_style::allow_dash_for_short);
    row.text("short", short_name.size() == 2 && short_name[0] == '-' ? short_name : "");
    row.flag("takes_value", option->semantic()->max_tokens() > 0);
    row.text("description", option->description());
    option_rows.push_back(std::move(row));
  }
  std::vector<JsonObject> code_rows;
  for (const ExitCodeRow& code : exit_codes()) {
    JsonObject row;
    row.integer("code", static_cast<int>(code.code)).text("name", code.name).text("meaning", code.meaning);
    code_rows.push_back(std::move(row));
  }
  JsonObject help;
  help.objects("verbs", verb_rows).objects("options", option_rows).objects("exit_codes", code_rows);
  return help;
}

ExitCode run_help(const Invocation& invocation) {
  invocation.out.result(help_json(invocation.operands), help_text(invocation.operands));
  return ExitCode::kOk;
}

}  // namespace sbus::cli
