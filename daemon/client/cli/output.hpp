// What several verbs print alike.
#pragma once

#include <sbus/sender.hpp>

#include <string>
#include <string_view>

namespace sbus::cli {

// `text` with line breaks, tabs and backslashes escaped, so that it takes
// one line of output.
std::string one_line(std::string_view text);

// Forged replies are dropped, never printed; says on stderr how many there
// were.
void warn_dropped(const Sender& sender);

}  // namespace sbus::cli
