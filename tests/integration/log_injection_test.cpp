// What outsiders can do to sbusd's log without the secret: values from the
// wire are escaped (a line feed in a call's id cannot forge a line), and a
// flood of refused messages writes a bounded number of lines, with a count
// of what was suppressed.
#include <catch2/catch.hpp>

#include <chrono>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::RawAmqp;
using sbus_test::SbusdProcess;
using sbus_test::wait_until;

namespace {

std::size_t lines_of(const std::string& text) {
  std::size_t count = 0;
  for (char c : text) count += c == '\n';
  return count;
}

// Whether a line of `log` begins with `start`.
bool has_line_starting(const std::string& log, const std::string& start) {
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(start, 0) == 0) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("an invalid-token call whose id holds a line feed writes no forged line", "[hostile][log]") {
  SbusdProcess sbusd;
  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  const std::string forged = "2026-12-06T22:00:00.000 info [supervisor pid=1] sbusd stopped";
  raw.publish("py-servicebus", sbusd.node(),
              sbus_test::py_call_body("evil\n" + forged + "\r\n", "not the secret", "math", "add", "[1,2]"),
              reply_queue, "evil");
  auto reply = raw.receive(10s);
  REQUIRE(reply);
  CHECK(reply->body.find("invalid_token") != std::string::npos);
  REQUIRE(wait_until([&] { return sbusd.log().find("invalid_token") != std::string::npos; }, 5s));
  const std::string log = sbusd.log();
  INFO("log:\n" << log);
  CHECK_FALSE(has_line_starting(log, forged));
  CHECK(log.find("sbusd stopped") != std::string::npos);  // there, but inside the refusal's own line
  // (XML turns the CR LF into a LF.)
  CHECK(log.find("evil\\x0a" + forged + "\\x0a") != std::string::npos);
}

TEST_CASE("a flood of refused messages writes a bounded number of log lines and counts the rest", "[hostile][log]") {
  SbusdProcess sbusd;
  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  sbus::Sender sender(sbusd.sender_options());
  const std::size_t before = lines_of(sbusd.log());

  constexpr int kHostile = 3000;
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < kHostile; ++i) {
    // Messages (no reply_to) with a wrong token, a long id with line feeds.
    raw.publish("py-servicebus", sbusd.node(),
                sbus_test::py_call_body("flood-" + std::to_string(i) + "\n" + std::string(500, 'x'), "wrong", "math",
                                        "add", "[1,2]"));
  }
  // Handled in order: once this call is answered, the flood has been read.
  sbus::CallResult sum = sender.call(sbusd.address("math.add"), "[2,3]", 30s);
  REQUIRE(sum.message == "5");
  const auto took = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started);
  const std::string log = sbusd.log();
  const std::size_t written = lines_of(log) - before;
  std::cout << "[figure] " << kHostile << " refused messages in " << took.count() << " s wrote " << written
            << " log lines (" << log.size() << " bytes of log in all)\n";
  INFO("log:\n" << log.substr(0, 20000));
  // 20 lines a kind per 10 s, and a count line when a new interval starts.
  CHECK(written <= static_cast<std::size_t>(took.count() / 10 + 1) * 21 + 2);
  // Each value is capped: no line near the size of the flood.
  CHECK(log.find(std::string(300, 'x')) == std::string::npos);

  // After the interval, the next refusal reports how many were suppressed.
  std::this_thread::sleep_for(10s);
  raw.publish("py-servicebus", sbusd.node(), sbus_test::py_call_body("later", "wrong", "math", "add", "[1,2]"));
  REQUIRE(wait_until([&] { return sbusd.log().find("event later") != std::string::npos; }, 10s));
  const std::string after = sbusd.log();
  INFO(after.substr(after.size() > 4000 ? after.size() - 4000 : 0));
  const std::size_t at = after.find("similar messages suppressed (refused message)");
  REQUIRE(at != std::string::npos);
  const std::size_t line = after.rfind('\n', at) + 1;
  const std::string count = after.substr(line, at - line);
  std::cout << "[figure] suppressed line: " << after.substr(line, after.find('\n', at) - line) << "\n";
  // "TIME warn [worker ... pid=N] COUNT similar ...": most of the flood.
  const std::size_t digits = count.find_last_not_of(' ');
  const std::size_t first = count.find_last_of(' ', digits) + 1;
  CHECK(std::stoul(count.substr(first, digits + 1 - first)) >= 1000);
}
