// The plugins' log API (sbus/log.hpp): lines of a service land in sbusd's
// log in its format, tagged as the worker's lines, named after the service,
// filtered by the config's log_level, one line per call whatever the text.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::vector<std::string> lines_with(const std::string& log, const std::string& part) {
  std::vector<std::string> found;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (contains(line, part)) found.push_back(line);
  }
  return found;
}

SbusdOptions log_service(const std::string& level) {
  SbusdOptions options;
  options.log_level = level;
  options.services_yaml =
      "  - name: test.log\n"
      "    plugin: test\n";
  return options;
}

}  // namespace

TEST_CASE("A plugin's log lines go to sbusd's log, named after the service, at the worker's level", "[plugin-log]") {
  SECTION("log_level info: the info line is written, the debug line is not") {
    SbusdProcess sbusd(log_service("info"));
    sbus::Sender sender(sbusd.sender_options());
    const auto result = sender.call(sbusd.address("test.log"), R"(["first"])", 10s);
    REQUIRE(result.ok());
    REQUIRE(sbus_test::wait_until([&] { return contains(sbusd.log(), "info line: first"); }, 5s));
    const std::string log = sbusd.log();
    INFO(log);
    const auto lines = lines_with(log, "info line: first");
    REQUIRE(lines.size() == 1);
    // sbusd's format, the worker's tag, then CATEGORY.SERVICE.
    CHECK(contains(lines[0], " info [worker amqp://guest@127.0.0.1:" + std::to_string(sbus_test::broker_port())));
    CHECK(contains(lines[0], "] test.log: info line: first"));
    CHECK_FALSE(contains(log, "debug line: first"));
  }
  SECTION("log_level debug: both lines are written") {
    SbusdProcess sbusd(log_service("debug"));
    sbus::Sender sender(sbusd.sender_options());
    REQUIRE(sender.call(sbusd.address("test.log"), R"(["second"])", 10s).ok());
    REQUIRE(sbus_test::wait_until([&] { return contains(sbusd.log(), "debug line: second"); }, 5s));
    const auto lines = lines_with(sbusd.log(), "debug line: second");
    REQUIRE(lines.size() == 1);
    CHECK(contains(lines[0], " debug [worker "));
    CHECK(contains(lines[0], "] test.log: debug line: second"));
  }
}

TEST_CASE("A plugin's log text cannot split its line or forge another", "[plugin-log]") {
  SbusdProcess sbusd(log_service("info"));
  sbus::Sender sender(sbusd.sender_options());
  const std::string forged = "2026-01-01T00:00:00.000 error [supervisor pid=1] forged";
  // JSON escapes: a real newline, CR, ESC and a backslash reach the plugin.
  const auto result = sender.call(sbusd.address("test.log"), R"(["a\nb\r\u001b[31m\\ )" + forged + R"("])", 10s);
  REQUIRE(result.ok());
  REQUIRE(sbus_test::wait_until([&] { return contains(sbusd.log(), "forged"); }, 5s));
  const std::string log = sbusd.log();
  INFO(log);
  const auto lines = lines_with(log, "forged");
  REQUIRE(lines.size() == 1);
  CHECK(contains(lines[0], R"(] test.log: info line: a\nb\r\x1b[31m\\ )" + forged));
  CHECK(lines_with(log, "[supervisor pid=1]").size() == 1);
}
