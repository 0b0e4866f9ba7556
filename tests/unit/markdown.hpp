// The project's markdown pages as the unit tests that hold docs/ against the
// code read them (docs_test, cli_docs_test): the pages, and the rows of
// their tables. Header-only; SBUS_SOURCE_DIR is the source tree.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace sbus_test {

// The whole file; throws std::runtime_error when it cannot be read.
inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// README.md and every .md page of docs/.
inline std::vector<std::filesystem::path> markdown_pages() {
  const std::filesystem::path source(SBUS_SOURCE_DIR);
  std::vector<std::filesystem::path> pages = {source / "README.md"};
  for (const auto& entry : std::filesystem::directory_iterator(source / "docs")) {
    if (entry.path().extension() == ".md") pages.push_back(entry.path());
  }
  return pages;
}

// `text` without surrounding spaces and, if it is one code span, its
// backticks.
inline std::string cell_text(std::string text) {
  const auto first = text.find_first_not_of(' ');
  const auto last = text.find_last_not_of(' ');
  text = first == std::string::npos ? std::string() : text.substr(first, last - first + 1);
  if (text.size() >= 2 && text.front() == '`' && text.back() == '`' && text.find('`', 1) == text.size() - 1) {
    text = text.substr(1, text.size() - 2);
  }
  return text;
}

// The body rows of the tables of `page` (the header and |---| lines left
// out), as cells (cell_text()): of the first table after the line
// `heading`, or, with no heading, of every table of the page.
inline std::vector<std::vector<std::string>> table_rows(const std::string& page, const std::string& heading = {}) {
  std::istringstream in(page);
  std::string line;
  if (!heading.empty()) {
    while (std::getline(in, line) && line != heading) {
    }
  }
  std::vector<std::vector<std::string>> rows;
  bool in_table = false;
  int header_lines = 0;
  while (std::getline(in, line)) {
    if (line.rfind("|", 0) != 0) {
      if (in_table && !heading.empty()) break;
      in_table = false;
      header_lines = 0;
      continue;
    }
    in_table = true;
    if (header_lines < 2) {  // the header and the |---| line
      ++header_lines;
      continue;
    }
    std::vector<std::string> cells;
    std::size_t start = 1;
    for (std::size_t bar = line.find('|', start); bar != std::string::npos; bar = line.find('|', start)) {
      cells.push_back(cell_text(line.substr(start, bar - start)));
      start = bar + 1;
    }
    rows.push_back(cells);
  }
  return rows;
}

}  // namespace sbus_test
