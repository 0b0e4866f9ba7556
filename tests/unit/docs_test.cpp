// The documentation against the code: every error code the code defines is
// in docs/errors.md and nothing else is, and every example shown in docs/ is
// the file under docs/examples/ that the build compiles and the tests run.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "markdown.hpp"

namespace fs = std::filesystem;
using sbus_test::markdown_pages;
using sbus_test::read_text;

namespace {

// The codes of every `namespace errc { ... }` in the headers of the daemon
// and the SDK, read from the source: a code added there without a line in
// docs/errors.md fails the test. Each maps to the file that defines it.
std::map<std::string, std::string> codes_in_source() {
  std::map<std::string, std::string> codes;
  const std::regex code(R"(inline\s+constexpr\s+[^=;]*=\s*"([^"]*)\")");
  for (const char* folder : {"daemon", "plugin-sdk/include"}) {
    for (const auto& entry : fs::recursive_directory_iterator(fs::path(SBUS_SOURCE_DIR) / folder)) {
      if (!entry.is_regular_file() || entry.path().extension() != ".hpp") continue;
      const std::string text = read_text(entry.path());
      for (std::size_t open = text.find("namespace errc {"); open != std::string::npos;
           open = text.find("namespace errc {", open + 1)) {
        const std::size_t close = text.find("\n}", open);
        REQUIRE(close != std::string::npos);
        const std::string block = text.substr(open, close - open);
        for (std::sregex_iterator m(block.begin(), block.end(), code), end; m != end; ++m) {
          codes[(*m)[1]] = entry.path().string();
        }
      }
    }
  }
  return codes;
}

// The first cells of the table rows of docs/errors.md: "| `code` | ...".
std::set<std::string> codes_in_docs() {
  std::set<std::string> codes;
  for (const auto& row : sbus_test::table_rows(read_text(fs::path(SBUS_SOURCE_DIR) / "docs/errors.md"))) {
    if (!row.empty()) codes.insert(row[0]);
  }
  return codes;
}

struct Example {
  std::string doc;
  std::string name;  // docs/examples/NAME
  std::string code;  // the block, its first line included
};

// The ```cpp blocks of docs/*.md and README.md whose first line is
// "// docs/examples/NAME" and the ```cmake and ```yaml blocks whose first line
// is "# docs/examples/NAME".
std::vector<Example> examples_in_docs() {
  std::vector<Example> examples;
  for (const fs::path& page : markdown_pages()) {
    std::istringstream in(read_text(page));
    std::string line;
    while (std::getline(in, line)) {
      if (line != "```cpp" && line != "```cmake" && line != "```yaml") continue;
      const std::string marker = line == "```cpp" ? "// docs/examples/" : "# docs/examples/";
      std::string block;
      while (std::getline(in, line) && line != "```") block += line + "\n";
      if (block.rfind(marker, 0) != 0) continue;
      const std::string name = block.substr(marker.size(), block.find('\n') - marker.size());
      examples.push_back({page.filename().string(), name, block});
    }
  }
  return examples;
}

}  // namespace

TEST_CASE("docs/errors.md lists exactly the error codes the code defines", "[docs]") {
  const auto source = codes_in_source();
  const auto documented = codes_in_docs();
  // The list was found at all (the parse is not vacuous).
  REQUIRE(source.count("service_failed") == 1);
  for (const auto& [code, file] : source) {
    INFO("defined in " << file);
    CHECK(documented.count(code) == 1);
  }
  for (const std::string& code : documented) {
    INFO("docs/errors.md lists " << code);
    CHECK(source.count(code) == 1);
  }
}

TEST_CASE("Every example in docs/ is the file under docs/examples/ it names, and every file there is shown", "[docs]") {
  const auto examples = examples_in_docs();
  REQUIRE(examples.size() >= 4);
  std::set<std::string> shown;
  for (const Example& example : examples) {
    INFO(example.doc << " shows docs/examples/" << example.name);
    const fs::path file = fs::path(SBUS_SOURCE_DIR) / "docs/examples" / example.name;
    REQUIRE(fs::exists(file));
    CHECK(read_text(file) == example.code);
    shown.insert(example.name);
  }
  for (const auto& entry : fs::directory_iterator(fs::path(SBUS_SOURCE_DIR) / "docs/examples")) {
    INFO("docs/examples/" << entry.path().filename().string() << " is not shown in any docs/*.md");
    CHECK(shown.count(entry.path().filename().string()) == 1);
  }
}

TEST_CASE("All C++ shown in README.md and docs/ is an example the tests build and run", "[docs]") {
  // Every ```cpp block names its file under docs/examples/, which the
  // example test above compares with it.
  const std::vector<fs::path> pages = markdown_pages();
  int blocks = 0;
  for (const fs::path& page : pages) {
    std::istringstream in(read_text(page));
    for (std::string line; std::getline(in, line);) {
      if (line != "```cpp" && line != "```c++") continue;
      ++blocks;
      std::getline(in, line);
      INFO(page.filename().string() << ": a ```cpp block starting " << line);
      CHECK(line.rfind("// docs/examples/", 0) == 0);
    }
  }
  CHECK(blocks >= 3);
}

TEST_CASE("Every relative link of README.md and docs/ names a file of the repository", "[docs]") {
  const std::vector<fs::path> pages = markdown_pages();
  const std::regex link(R"(\]\(([^)#\s]+)(#[^)\s]*)?\))");
  int checked = 0;
  for (const fs::path& page : pages) {
    const std::string text = read_text(page);
    for (std::sregex_iterator m(text.begin(), text.end(), link), end; m != end; ++m) {
      const std::string target = (*m)[1];
      if (target.find("://") != std::string::npos || target.rfind("mailto:", 0) == 0) continue;
      INFO(page.filename().string() << " links " << target);
      CHECK(fs::exists(page.parent_path() / target));
      ++checked;
    }
  }
  CHECK(checked >= 20);
}
