// Where XML text stops being plain: the first byte the wire codec cannot
// pass through as it is. Internal to the wire codec (wire_codec.cpp,
// xml_fast_reader.cpp), which reads and writes bodies of any size: a call's
// params and a reply are one long text, looked at here 16 bytes at a time
// (SSE2, on every x86-64; byte by byte elsewhere, with the same answers).
#pragma once

#include <cstddef>
#include <string_view>

namespace sbus {

struct TextScan {
  bool carriage_return = false;  // CR is plain text too
  bool markup = false;           // '<' and '&' stop the scan
};

// The offset of the first byte of `text` that is not printable ASCII
// (0x20 to 0x7e), tab, LF, or what `scan` adds; text.size() when there is
// none. Bytes over 0x7f (UTF-8) and DEL stop it.
std::size_t plain_text_length(std::string_view text, TextScan scan);

}  // namespace sbus
