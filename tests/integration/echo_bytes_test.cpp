// test.echo answers its params' bytes as they came (Request::params_json():
// whitespace, escapes and all), test.rewrite as the SDK writes them back
// from their document: the first is what the benchmark echoes, the second
// what a service that re-writes JSON answers.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <sbus/sender.hpp>

#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;

namespace {

SbusdOptions echo_and_rewrite() {
  SbusdOptions options;
  options.max_message_bytes = 4 * 1024 * 1024;
  options.services_yaml =
      "  - name: test.echo\n    plugin: test\n"
      "  - name: test.rewrite\n    plugin: test\n";
  return options;
}

// One string of every kind JSON text holds: each escape JSON has, every
// control character and DEL as \u00XX, a surrogate pair, UTF-8 of two,
// three and four bytes, and what XML's CDATA and markup must carry through
// ("]]>", "<", "&").
std::string every_kind_of_text() {
  std::string text = R"(\"\\\/\b\f\n\r\t \ud83d\ude00 \u00e9\u00E9 ]]> <a>&amp; ]]]]>> )";
  char escape[8];
  for (int c = 0; c < 0x20; ++c) {
    std::snprintf(escape, sizeof escape, "\\u%04x", c);
    text += escape;
  }
  // DEL as its escape: a raw one is not XML-safe text, which the sender
  // sends as '?' (xml_safe_text()).
  text += "\\u007f héllo wörld ☃ 日本語 😀 ";
  // Every code point from U+0080 to U+07FF, as its two UTF-8 bytes.
  for (int c = 0x80; c < 0x800; ++c) {
    text += static_cast<char>(0xc0 | (c >> 6));
    text += static_cast<char>(0x80 | (c & 0x3f));
  }
  return text;
}

}  // namespace

TEST_CASE("test.echo answers its params byte for byte, whitespace and escapes as they came", "[rpc][echo]") {
  SbusdProcess sbusd(echo_and_rewrite());
  sbus::Sender sender(sbusd.sender_options());
  const std::vector<std::string> values = {
      R"({"unicode":"h\u00e9llo","slash":"a\/b","upper":"\u00E9"})",
      "{ \"spaced\" : [ 1 , 2.50 , 1e2 , -0.0 ] ,\n\t\"tail\" : null }",
      "  [\"" + every_kind_of_text() + "\"]  ",
  };
  for (const std::string& value : values) {
    INFO("sent: " << value.substr(0, 200));
    const sbus::CallResult result = sender.call(sbusd.address("test.echo"), value, 10s);
    CHECK(result.error_code == "");
    CHECK(result.message == value);
  }
}

TEST_CASE("test.rewrite answers its params as the SDK writes them: compact, escapes as characters", "[rpc][echo]") {
  SbusdProcess sbusd(echo_and_rewrite());
  sbus::Sender sender(sbusd.sender_options());
  const sbus::CallResult unicode = sender.call(
      sbusd.address("test.rewrite"),
      R"({"unicode":"h\u00e9llo","raw":"héllo wörld ☃ 日本語 😀","escapes":"tab\tquote\"back\\slash\nline"})", 10s);
  CHECK(unicode.error_code == "");
  CHECK(unicode.message ==
        R"({"unicode":"héllo","raw":"héllo wörld ☃ 日本語 😀","escapes":"tab\tquote\"back\\slash\nline"})");
  const sbus::CallResult spaced =
      sender.call(sbusd.address("test.rewrite"), "{ \"spaced\" : [ 1 , 2 ] ,\n\t\"slash\" : \"a\\/b\" }", 10s);
  CHECK(spaced.error_code == "");
  CHECK(spaced.message == R"({"spaced":[1,2],"slash":"a/b"})");
}

TEST_CASE("a 1 MiB call of escaped unicode and binary-ish JSON comes back from test.echo byte for byte",
          "[rpc][echo]") {
  SbusdProcess sbusd(echo_and_rewrite());
  sbus::Sender sender(sbusd.sender_options());
  // Many AMQP frames each way (the frame size is 32 KiB), with escapes and
  // multi-byte characters across their edges.
  const std::string piece = every_kind_of_text();
  std::string big = "{\"numbers\": [1, -2.5e-3, 12345678901234567890],\n \"text\": [";
  while (big.size() < 1024 * 1024) big += "\"" + piece + "\", ";
  big += "\"end\"]}";
  const sbus::CallResult result = sender.call(sbusd.address("test.echo"), big, 30s);
  CHECK(result.error_code == "");
  CHECK(result.message.size() == big.size());
  // Where they first differ, rather than a megabyte printed twice.
  const auto differ = std::mismatch(big.begin(), big.end(), result.message.begin(), result.message.end());
  INFO("first difference at byte " << (differ.first - big.begin()) << ": "
                                   << big.substr(differ.first - big.begin(), 40));
  CHECK(differ.first == big.end());
  // Through the SDK's re-writing the same params come back shorter (no
  // whitespace, \u00e9 as two bytes): the echo above did not re-write them.
  const sbus::CallResult rewritten = sender.call(sbusd.address("test.rewrite"), big, 30s);
  CHECK(rewritten.error_code == "");
  CHECK(rewritten.message.size() < big.size());
}
