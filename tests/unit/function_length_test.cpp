// No function of the product over kMaxLines lines without a reason written
// beside it (docs/development.md). The test reads every .cpp and .hpp under
// daemon/, plugin-sdk/ and plugins/, finds the function bodies by their
// braces (comments, string and character literals, raw strings and
// preprocessor lines are blanked first), and measures each from the first
// line of its signature to its closing brace. A longer one passes when the
// comment right above it says why it is long: it names its `lines` or its
// `length` ("Most of its length is the table of options.").
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

constexpr int kMaxLines = 60;

struct Function {
  std::string name;
  int first_line = 0;  // of the signature, 1-based
  int lines = 0;       // through the closing brace
};

// `text` with every comment, string and character literal and preprocessor
// line turned into spaces; line breaks stay, so lines keep their numbers.
std::string blank_non_code(const std::string& text) {
  std::string out = text;
  const std::size_t n = text.size();
  std::size_t i = 0;
  bool line_start = true;
  auto blank = [&out](std::size_t from, std::size_t to) {
    for (std::size_t k = from; k < to; ++k) {
      if (out[k] != '\n') out[k] = ' ';
    }
  };
  while (i < n) {
    const char c = text[i];
    if (c == '\n') {
      line_start = true;
      ++i;
      continue;
    }
    if (line_start && c == '#') {
      // A directive, with its continuation lines.
      std::size_t end = i;
      while (end < n && (text[end] != '\n' || (end > 0 && text[end - 1] == '\\'))) ++end;
      blank(i, end);
      i = end;
      continue;
    }
    if (!std::isspace(static_cast<unsigned char>(c))) line_start = false;
    if (c == '/' && i + 1 < n && text[i + 1] == '/') {
      const std::size_t end = std::min(text.find('\n', i), n);
      blank(i, end);
      i = end;
    } else if (c == '/' && i + 1 < n && text[i + 1] == '*') {
      const std::size_t end = std::min(text.find("*/", i + 2), n - 2) + 2;
      blank(i, end);
      i = end;
    } else if (c == 'R' && i + 1 < n && text[i + 1] == '"' &&
               (i == 0 || !(std::isalnum(static_cast<unsigned char>(text[i - 1])) || text[i - 1] == '_'))) {
      const std::size_t open = text.find('(', i);
      const std::string close = ")" + text.substr(i + 2, open - i - 2) + "\"";
      const std::size_t end = std::min(text.find(close, open), n - close.size()) + close.size();
      blank(i + 1, end);
      i = end;
    } else if (c == '"' || c == '\'') {
      // A ' between digits separates them (1'000), it opens nothing.
      if (c == '\'' && i > 0 && std::isxdigit(static_cast<unsigned char>(text[i - 1])) && i + 1 < n &&
          std::isxdigit(static_cast<unsigned char>(text[i + 1]))) {
        ++i;
        continue;
      }
      std::size_t end = i + 1;
      while (end < n && text[end] != c && text[end] != '\n') end += text[end] == '\\' ? 2 : 1;
      blank(i + 1, std::min(end, n));
      i = end + 1;
    } else {
      ++i;
    }
  }
  return out;
}

bool has_word(const std::string& text, const char* word) {
  return std::regex_search(text, std::regex(std::string("\\b") + word + "\\b"));
}

// What a `{` opens at namespace or class level, from the declaration before
// it (`header`, outside parentheses kept as they are).
enum class Block { kScope, kFunction, kOther };

Block classify(const std::string& header) {
  std::string trimmed = header;
  while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(trimmed.back()))) trimmed.pop_back();
  const std::size_t paren = trimmed.find('(');
  if (paren == std::string::npos) {
    if (has_word(trimmed, "namespace") || has_word(trimmed, "extern")) return Block::kScope;
    if (trimmed.find('=') == std::string::npos &&
        (has_word(trimmed, "class") || has_word(trimmed, "struct") || has_word(trimmed, "union"))) {
      return Block::kScope;
    }
    return Block::kOther;  // an enum, an initializer
  }
  const std::size_t equals = trimmed.find('=');
  if (equals != std::string::npos && equals < paren && !has_word(trimmed, "operator")) return Block::kOther;
  // A function body follows `)`, a qualifier, a trailing return type or a
  // braced member initializer (`: a_(x), b_{y} {`); such an initializer's
  // own brace follows the member's name.
  static const std::regex body_follows(R"(([)}]|\b(const|override|final|noexcept|mutable)|->\s*[\w:<>,\s*&]+)$)");
  return std::regex_search(trimmed, body_follows) ? Block::kFunction : Block::kOther;
}

// The name before the first parenthesis of a function's signature.
std::string name_of(const std::string& header) {
  static const std::regex name(R"((\boperator\s*[^\s(]+|[~\w:]+)\s*\()");
  std::smatch match;
  return std::regex_search(header, match, name) ? match[1].str() : header;
}

std::vector<Function> functions_in(const std::string& text) {
  const std::string code = blank_non_code(text);
  struct Frame {
    Block block;
    Function function;
  };
  std::vector<Frame> stack;
  std::vector<Function> found;
  static const std::regex access(R"((public|protected|private)\s*:)");
  std::string header;  // since the last `;`, `{` or `}` at scope level, or an access label
  int header_line = 0;
  int parens = 0;
  int line = 1;
  auto at_scope = [&stack] { return stack.empty() || stack.back().block == Block::kScope; };
  auto in_header = [&stack, &at_scope] {
    // Inside an initializer's braces at scope level, the declaration goes on.
    return at_scope() || std::all_of(stack.rbegin(), stack.rend(),
                                     [](const Frame& frame) { return frame.block != Block::kFunction; });
  };
  for (const char c : code) {
    if (c == '\n') ++line;
    if (!in_header()) {
      if (c == '{') stack.push_back({Block::kOther, {}});
      if (c == '}') {
        if (stack.back().block == Block::kFunction) {
          Function function = stack.back().function;
          function.lines = line - function.first_line + 1;
          found.push_back(function);
          header.clear();
        }
        stack.pop_back();
      }
      continue;
    }
    if (c == '(') ++parens;
    if (c == ')') --parens;
    if (c == '{' && parens == 0 && at_scope()) {
      const Block block = classify(header);
      Frame frame{block, {}};
      if (block == Block::kFunction) frame.function = {name_of(header), header_line, 0};
      stack.push_back(frame);
      if (block != Block::kOther) header.clear();
      continue;
    }
    if (c == '{') {
      stack.push_back({Block::kOther, {}});  // an initializer's: part of the declaration
    } else if (c == '}') {
      const Block block = stack.empty() ? Block::kScope : stack.back().block;
      if (!stack.empty()) stack.pop_back();
      if (block == Block::kScope) {
        header.clear();
        continue;
      }
    } else if (c == ';' && at_scope()) {
      header.clear();
      parens = 0;
      continue;
    }
    if (header.empty() && std::isspace(static_cast<unsigned char>(c))) continue;
    if (header.empty()) header_line = line;
    header += c;
    if (c == ':' && std::regex_match(header, access)) header.clear();
  }
  return found;
}

// The comment lines right above line `first_line` (1-based), joined.
std::string comment_above(const std::vector<std::string>& lines, int first_line) {
  std::string comment;
  for (int i = first_line - 2; i >= 0; --i) {
    const std::string& text = lines[static_cast<std::size_t>(i)];
    const std::size_t start = text.find_first_not_of(" \t");
    if (start == std::string::npos || text.compare(start, 2, "//") != 0) break;
    comment = text.substr(start + 2) + " " + comment;
  }
  return comment;
}

bool gives_a_reason(const std::string& comment) {
  static const std::regex reason(R"(\b(lines|length)\b)", std::regex::icase);
  return std::regex_search(comment, reason);
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

const Function* find(const std::vector<Function>& functions, const std::string& name) {
  for (const Function& function : functions) {
    if (function.name == name) return &function;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("functions are measured from their signature to their closing brace", "[layout]") {
  const std::string text =
      "namespace a {\n"                                // 1
      "namespace {\n"                                  // 2
      "const std::map<int, int> kTable = {{1, 2}};\n"  // 3
      "}  // namespace\n"                              // 4
      "// A comment with a { brace.\n"                 // 5
      "int Widget::size(int x,\n"                      // 6
      "                 int y) const {\n"              // 7
      "  const char* s = \"}\";\n"                     // 8
      "  auto f = [] { return '}'; };\n"               // 9
      "  if (x) {\n"                                   // 10
      "    return R\"(}})\";\n"                        // 11
      "  }\n"                                          // 12
      "  return y;\n"                                  // 13
      "}\n"                                            // 14
      "class Widget final : public Base {\n"           // 15
      " public:\n"                                     // 16
      "  Widget() : a_(1), b_{2} {\n"                  // 17
      "    run();\n"                                   // 18
      "  }\n"                                          // 19
      "  bool ok() const { return true; }\n"           // 20
      "  enum class Kind { kOne, kTwo };\n"            // 21
      "};\n"                                           // 22
      "#define BRACE {\n"                              // 23
      "auto Widget::next() -> int {\n"                 // 24
      "  return 1'000;\n"                              // 25
      "}\n"                                            // 26
      "}  // namespace a\n";                           // 27
  const std::vector<Function> functions = functions_in(text);
  REQUIRE(functions.size() == 4);
  const Function* size = find(functions, "Widget::size");
  REQUIRE(size != nullptr);
  CHECK(size->first_line == 6);
  CHECK(size->lines == 9);
  const Function* constructor = find(functions, "Widget");
  REQUIRE(constructor != nullptr);
  CHECK(constructor->first_line == 17);
  CHECK(constructor->lines == 3);
  const Function* ok = find(functions, "ok");
  REQUIRE(ok != nullptr);
  CHECK(ok->lines == 1);
  const Function* next = find(functions, "Widget::next");
  REQUIRE(next != nullptr);
  CHECK(next->first_line == 24);
  CHECK(next->lines == 3);
}

TEST_CASE("a long function passes only with a reason for its length right above it", "[layout]") {
  const std::vector<std::string> lines = {"// Most of its length is the table of options.", "int parse() {", "",
                                          "// Parses.", "int other() {"};
  CHECK(gives_a_reason(comment_above(lines, 2)));
  CHECK_FALSE(gives_a_reason(comment_above(lines, 5)));
  CHECK_FALSE(gives_a_reason(comment_above(lines, 1)));
}

TEST_CASE("no function of the product is over 60 lines without a reason written beside it", "[layout]") {
  const fs::path source(SBUS_SOURCE_DIR);
  std::vector<std::string> too_long;
  std::size_t measured = 0;
  for (const char* folder : {"daemon", "plugin-sdk", "plugins"}) {
    for (const auto& entry : fs::recursive_directory_iterator(source / folder)) {
      const auto ext = entry.path().extension();
      if (!entry.is_regular_file() || (ext != ".cpp" && ext != ".hpp")) continue;
      const std::string text = read(entry.path());
      const std::vector<std::string> lines = split_lines(text);
      for (const Function& function : functions_in(text)) {
        ++measured;
        if (function.lines <= kMaxLines || gives_a_reason(comment_above(lines, function.first_line))) continue;
        too_long.push_back(fs::relative(entry.path(), source).generic_string() + ":" +
                           std::to_string(function.first_line) + ": " + function.name + " is " +
                           std::to_string(function.lines) + " lines, with no reason written above it");
      }
    }
  }
  // The product has hundreds of functions: a scanner that found few is broken.
  CHECK(measured > 500);
  for (const std::string& problem : too_long) UNSCOPED_INFO(problem);
  CHECK(too_long.empty());
}
