// What the tests of held sends share (held_sends_test, isolate_once_test):
// test.sends sends to test.record, which writes one JSON line a message to
// a file; these read that file back.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"

namespace sbus_test {

// The lines of the file at `path` (none when it cannot be read).
inline std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> lines;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The line test.record writes for message {"key": KEY, "n": N}.
inline std::string record_line(const std::string& key, int n) {
  return R"({"key":")" + key + R"(","n":)" + std::to_string(n) + "}";
}

inline long count_of(const std::vector<std::string>& lines, const std::string& line) {
  return std::count(lines.begin(), lines.end(), line);
}

// Sends a last message through test.sends and waits until test.record has
// it: test.sends runs its messages one at a time, in order, so everything
// sent before it has been handled (and released) by then.
inline void wait_for_marker(sbus::Sender& sender, const SbusdProcess& sbusd, const std::string& record) {
  using namespace std::chrono_literals;
  sender.send(sbusd.address("test.sends"), R"({"to":")" + sbusd.address("test.record") + R"(","key":"end"})");
  REQUIRE(wait_until([&] { return count_of(lines_of(record), record_line("end", 0)) == 1; }, 20s));
}

}  // namespace sbus_test
