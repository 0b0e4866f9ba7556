#include "client/cli/output.hpp"

#include <iostream>

namespace sbus::cli {

std::string one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      default: out += c;
    }
  }
  return out;
}

void warn_dropped(const Sender& sender) {
  if (sender.dropped_replies() > 0) {
    std::cerr << "sbus: dropped " << sender.dropped_replies()
              << " reply(ies) that failed the hmac-sha256-v2 signature check\n";
  }
}

}  // namespace sbus::cli
