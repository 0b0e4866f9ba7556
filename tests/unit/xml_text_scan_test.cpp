// Where XML text stops being plain, found 16 bytes at a time: every byte
// value at every place in and around a 16-byte block gives the answer a
// byte-by-byte look gives.
#include "protocol/xml_text_scan.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace {

bool plain_byte(unsigned char c, sbus::TextScan scan) {
  if (c == '\t' || c == '\n') return true;
  if (c == '\r') return scan.carriage_return;
  if ((c == '<' || c == '&') && scan.markup) return false;
  return c >= 0x20 && c <= 0x7e;
}

}  // namespace

TEST_CASE("plain text length: the first byte that is not plain, wherever it stands", "[xml_text_scan]") {
  for (const sbus::TextScan scan : {sbus::TextScan{}, sbus::TextScan{.carriage_return = true},
                                    sbus::TextScan{.markup = true}, sbus::TextScan{true, true}}) {
    CAPTURE(scan.carriage_return, scan.markup);
    for (int byte = 0; byte < 256; ++byte) {
      const auto c = static_cast<unsigned char>(byte);
      for (const std::size_t at : {0, 1, 15, 16, 17, 31, 40, 47}) {
        std::string text(48, 'x');
        text[at] = static_cast<char>(c);
        CAPTURE(byte, at);
        CHECK(sbus::plain_text_length(text, scan) == (plain_byte(c, scan) ? text.size() : at));
      }
    }
  }
}

TEST_CASE("plain text length: tab, LF and spaces in a block do not hide what follows", "[xml_text_scan]") {
  std::string text = "a\tb\nc d e f g h i j k l m n o p q";  // blocks of 16 with tabs and LFs
  text += "\x01";
  CHECK(sbus::plain_text_length(text, {}) == text.size() - 1);
  CHECK(sbus::plain_text_length("", {}) == 0);
  CHECK(sbus::plain_text_length(std::string(1000, 'y') + "\xc3\xa9", {}) == 1000);  // UTF-8 is not plain
  CHECK(sbus::plain_text_length(std::string(100, 'y') + "<" + std::string(100, 'z'), {.markup = true}) == 100);
  CHECK(sbus::plain_text_length(std::string(100, 'y') + "<" + std::string(100, 'z'), {}) == 201);
}
