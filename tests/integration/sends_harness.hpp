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

// A node whose test.sends (kind message) and rpc.sends (the same service,
// kind rpc) send to test.record, which writes each message as a line of the
// file `record`; `isolate`: the two senders run in an isolated process;
// `ids`, when given: test.record also writes each message id as a line there.
inline SbusdOptions sends_to_record(const std::string& record, int max_retries, bool isolate = false,
                                    const std::string& ids = {}) {
  const std::string isolated = isolate ? "    isolate: true\n" : "";
  SbusdOptions options;
  options.extra_yaml = "max_retries: " + std::to_string(max_retries) + "\n";
  options.services_yaml =
      "  - name: test.sends\n    plugin: test\n    kind: message\n" + isolated +
      "  - name: rpc.sends\n    plugin: test\n    export: sends\n" + isolated +
      "  - name: test.record\n    plugin: test\n    kind: message\n    options:\n      file: " + record + "\n";
  if (!ids.empty()) options.services_yaml += "      id_file: " + ids + "\n";
  return options;
}

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
