// Log lines from outside values: escaped, capped, and rate limited per kind
// (made-up times).
#include "base/log.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "base/log_limiter.hpp"

using namespace std::chrono_literals;
using sbus::log_value;
using sbus::LogLimiter;

TEST_CASE("a value from the wire cannot start a line of its own in the log", "[log]") {
  SECTION("line feeds, carriage returns and other control characters are shown as \\xNN") {
    CHECK(log_value("id\n2026-12-06T22:00:00.000 info [supervisor pid=1] sbusd stopped") ==
          "id\\x0a2026-12-06T22:00:00.000 info [supervisor pid=1] sbusd stopped");
    CHECK(log_value(std::string("a\rb\tc\x1b[31md\x7f", 12)) == "a\\x0db\\x09c\\x1b[31md\\x7f");
    CHECK(log_value(std::string("nul\0byte", 8)) == "nul\\x00byte");
  }
  SECTION("a backslash is escaped too, so that \\x0a in the value cannot pass for an escape") {
    CHECK(log_value("a\\x0ab") == "a\\x5cx0ab");
  }
  SECTION("bytes outside ASCII are shown as \\xNN") {
    CHECK(log_value("caf\xc3\xa9") == "caf\\xc3\\xa9");
  }
  SECTION("printable ASCII is kept as it is") {
    CHECK(log_value("call-42 <math.add> [1,2]") == "call-42 <math.add> [1,2]");
  }
}

TEST_CASE("a long value from the wire is cut with a marker naming its length", "[log]") {
  const std::string long_id(100000, 'x');
  const std::string logged = log_value(long_id);
  CHECK(logged == std::string(sbus::kLogValueMax, 'x') + "...[100000 bytes]");
  CHECK(log_value("abcdef", 3) == "abc...[6 bytes]");
  CHECK(log_value("abc", 3) == "abc");
  SECTION("the cap counts the value's bytes, before escaping") {
    CHECK(log_value("\n\n\n\n", 2) == "\\x0a\\x0a...[4 bytes]");
  }
}

TEST_CASE("repeated lines of one kind are limited per interval, and the next line written counts the rest", "[log]") {
  sbus::LogLimitOptions options;
  options.burst = 3;
  options.interval = 10s;
  LogLimiter limiter(options);
  const LogLimiter::TimePoint t0 = LogLimiter::TimePoint{} + 1000h;

  int written = 0;
  for (int i = 0; i < 1000; ++i) written += limiter.admit("refused message", t0 + std::chrono::milliseconds(i)).write;
  CHECK(written == 3);

  SECTION("another kind has its own allowance") {
    CHECK(limiter.admit("error reply", t0 + 1s).write);
  }
  SECTION("in the next interval lines are written again, the first one with the count suppressed") {
    const LogLimiter::Verdict next = limiter.admit("refused message", t0 + 10s);
    CHECK(next.write);
    CHECK(next.suppressed == 997);
    const LogLimiter::Verdict after = limiter.admit("refused message", t0 + 10s + 1ms);
    CHECK(after.write);
    CHECK(after.suppressed == 0);
  }
  SECTION("just before the interval ends, still suppressed") {
    CHECK_FALSE(limiter.admit("refused message", t0 + 10s - 1ms).write);
  }
}
