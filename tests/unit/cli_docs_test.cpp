// docs/cli.md against the tables of the command line: its table of verbs is
// the code's (client/cli/verb_table.cpp), row for row, its table of exit
// codes is the code's (client/cli/exit_code.cpp), every option the CLI takes
// is listed there and nothing else is, and every `sbus VERB` that README.md
// and docs/ show names a verb that exists.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "client/cli/command_line.hpp"
#include "client/cli/exit_code.hpp"
#include "client/cli/verb.hpp"
#include "markdown.hpp"

namespace fs = std::filesystem;
using sbus::cli::ExitCodeRow;
using sbus::cli::Needs;
using sbus::cli::Verb;
using sbus_test::markdown_pages;
using sbus_test::read_text;
using sbus_test::table_rows;

namespace {

std::string cli_md() {
  return read_text(fs::path(SBUS_SOURCE_DIR) / "docs/cli.md");
}

// How docs/cli.md writes what a verb needs.
std::string needs_text(Needs needs) {
  switch (needs) {
    case Needs::kNothing: return "-";
    case Needs::kBroker: return "broker";
    case Needs::kSecret: return "broker, secret";
  }
  return "?";
}

}  // namespace

TEST_CASE("docs/cli.md lists exactly the verbs of the CLI's table, with their operands, needs and summary",
          "[cli][docs]") {
  const auto rows = table_rows(cli_md(), "## Verbs");
  REQUIRE_FALSE(rows.empty());
  std::map<std::string, std::vector<std::string>> documented;
  for (const auto& row : rows) {
    REQUIRE(row.size() == 4);
    documented[row[0]] = row;
  }
  for (const Verb& verb : sbus::cli::verbs()) {
    const std::string name(verb.name);
    INFO("the verb " << name);
    REQUIRE(documented.count(name) == 1);
    CHECK(documented[name][1] == (verb.operands.empty() ? "-" : std::string(verb.operands)));
    CHECK(documented[name][2] == needs_text(verb.needs));
    CHECK(documented[name][3] == std::string(verb.summary));
  }
  std::set<std::string> in_code;
  for (const Verb& verb : sbus::cli::verbs()) in_code.insert(std::string(verb.name));
  for (const auto& [name, row] : documented) {
    INFO("docs/cli.md documents the verb " << name);
    CHECK(in_code.count(name) == 1);
  }
}

TEST_CASE("docs/cli.md's exit codes are the CLI's table: number, name and meaning", "[cli][docs]") {
  const auto rows = table_rows(cli_md(), "## Exit codes");
  const auto codes = sbus::cli::exit_codes();
  REQUIRE(rows.size() == codes.size());
  for (std::size_t i = 0; i < codes.size(); ++i) {
    const ExitCodeRow& code = codes[i];
    INFO("exit code " << static_cast<int>(code.code));
    REQUIRE(rows[i].size() == 3);
    CHECK(rows[i][0] == std::to_string(static_cast<int>(code.code)));
    CHECK(rows[i][1] == std::string(code.name));
    CHECK(rows[i][2] == std::string(code.meaning));
  }
}

TEST_CASE("The exit codes keep their numbers", "[cli]") {
  // Scripts test these numbers: a code keeps its number for good.
  const std::map<std::string, int> kept = {
      {"ok", 0}, {"service_error", 1}, {"usage", 2}, {"timeout", 3}, {"unreachable", 4}};
  std::map<std::string, int> now;
  for (const ExitCodeRow& row : sbus::cli::exit_codes()) now[std::string(row.name)] = static_cast<int>(row.code);
  CHECK(now == kept);
}

TEST_CASE("docs/cli.md lists exactly the options the CLI takes", "[cli][docs]") {
  std::set<std::string> documented;
  for (const auto& row : table_rows(cli_md(), "## Options")) {
    REQUIRE_FALSE(row.empty());
    std::smatch m;
    if (std::regex_search(row[0], m, std::regex(R"(--([a-z-]+))"))) documented.insert(m[1]);
  }
  REQUIRE_FALSE(documented.empty());
  std::set<std::string> taken;
  sbus::cli::CommandLine line;
  const auto options = sbus::cli::cli_options(&line);
  for (const auto& option : options.options()) taken.insert(option->long_name());
  for (const std::string& option : taken) {
    INFO("the CLI takes --" << option);
    CHECK(documented.count(option) == 1);
  }
  for (const std::string& option : documented) {
    INFO("docs/cli.md lists --" << option);
    CHECK(taken.count(option) == 1);
  }
}

TEST_CASE("Every `sbus VERB` that README.md and docs/ show is a verb of the CLI", "[cli][docs]") {
  const std::vector<fs::path> pages = markdown_pages();
  // In a code span (`sbus call ...`), or at the start of a line of a code
  // block (sbus call ..., $ sbus call ...); options (`sbus --token`) aside.
  const std::regex in_span(R"(`sbus ([a-z][a-z-]*))");
  const std::regex in_block(R"(^\s*\$? ?sbus ([a-z][a-z-]*))");
  std::set<std::string> first_words;
  for (const Verb& verb : sbus::cli::verbs()) first_words.insert(std::string(verb.name.substr(0, verb.name.find(' '))));
  int checked = 0;
  for (const fs::path& page : pages) {
    std::istringstream in(read_text(page));
    bool in_code_block = false;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("```", 0) == 0) in_code_block = !in_code_block;
      const std::regex& shown = in_code_block ? in_block : in_span;
      for (std::sregex_iterator m(line.begin(), line.end(), shown), end; m != end; ++m) {
        INFO(page.filename().string() << ": " << line);
        CHECK(first_words.count((*m)[1]) == 1);
        ++checked;
      }
    }
  }
  CHECK(checked >= 10);
}
