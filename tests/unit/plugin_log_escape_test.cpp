// The log's escaping of text that comes from plugins (sbus/log.hpp).
#include <catch2/catch.hpp>

#include <string>

#include "base/log.hpp"

TEST_CASE("Text from a plugin is escaped so that it stays on one log line", "[log]") {
  CHECK(sbus::log_escape("plain text, UTF-8 \xc3\xa9 kept") == "plain text, UTF-8 \xc3\xa9 kept");
  CHECK(sbus::log_escape("a\nb") == R"(a\nb)");
  CHECK(sbus::log_escape("a\r\nb\tc") == R"(a\r\nb\tc)");
  CHECK(sbus::log_escape("\x1b[31mred") == R"(\x1b[31mred)");
  CHECK(sbus::log_escape(std::string("nul\0del\x7f", 8)) == R"(nul\x00del\x7f)");
  // A backslash is escaped too, so that "\n" in the log always means a newline was there.
  CHECK(sbus::log_escape(R"(C:\new)") == R"(C:\\new)");
  CHECK(sbus::log_escape("") == "");
}
