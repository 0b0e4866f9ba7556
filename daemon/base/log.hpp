// One log line per call, written with a single write(2) to stderr so that
// lines of the supervisor and of every worker (which share its stderr) never
// interleave. Thread-safe. A line is always one line: control characters in
// the text (a line feed from a caller's id) are written as \xNN, and a text
// over 8 KiB is cut with a marker.
//
//   SBUS_LOG(kWarn) << "event " << id << ": " << what;
#pragma once

#include <cstddef>
#include <sstream>
#include <string>
#include <string_view>

// LogLevel, shared with the plugins' log API.
#include "sbus/log.hpp"

namespace sbus {

// Parses "debug", "info", "warn"/"warning", "error"; false if unknown.
bool parse_log_level(std::string_view text, LogLevel* level);
const char* log_level_name(LogLevel level);

// Sets the process's minimum level and the tag every line carries (e.g.
// "supervisor" or "worker 127.0.0.1:5672"). Call once per process, before
// threads start; a forked worker calls it again.
void log_init(std::string tag, LogLevel level);
bool log_enabled(LogLevel level);
// What log_init() set: a worker hands them to libsbus.so's copy of this
// code, which plugins log through (sbus/log.hpp).
const std::string& log_tag();
LogLevel log_level();

// `text` with backslash and control characters escaped (\\, \n, \r, \t,
// \xHH) and bytes from 0x80 up kept: text from a plugin cannot end a line
// early or forge another.
std::string log_escape(std::string_view text);

// A value from outside (the wire, a caller, a plugin's error text) as it
// may appear in a log line: control characters, backslashes and bytes
// outside printable ASCII written as \xNN, and at most `max` bytes of the
// value kept, then "...[N bytes]" with its full length. A forged line ("\n
// ... sbusd stopped") then stays visibly inside its own line.
inline constexpr std::size_t kLogValueMax = 200;
std::string log_value(std::string_view text, std::size_t max = kLogValueMax);

// SBUS_LOG_LIMITED's gate: whether a line of `kind` may be written now (see
// log_limiter.hpp: at most 20 lines of a kind per 10 s). When lines of that
// kind were dropped before this one, first writes "N similar messages
// suppressed (KIND)" at `level`. Thread-safe.
bool log_admit(LogLevel level, std::string_view kind);

class LogLine {
 public:
  explicit LogLine(LogLevel level) : level_(level) {}
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  template <typename T>
  LogLine& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

// Turns `LogLine(...) << ...` into a void expression for SBUS_LOG's ?:.
struct LogVoidify {
  void operator&(const LogLine&) const {}
};

// libsbus.so links its own copy of this code (hidden, as all of sbus_base
// there), which plugins log through. The worker finds this function through
// each loaded plugin (a plugin links libsbus.so) and calls it with its
// log_tag() and log_level(), so that plugin lines look like its own. Only
// the first call counts. Not part of the documented SDK.
inline constexpr const char* kLogConfigureSymbol = "sbus_log_configure";
using LogConfigureFunction = void(const char* tag, int level);

}  // namespace sbus

// An expression, not an if: safe in an unbraced if/else. The arguments are
// not evaluated when the level is off.
#define SBUS_LOG(level)                                   \
  !::sbus::log_enabled(::sbus::LogLevel::level) ? (void)0 \
                                                : ::sbus::LogVoidify() & ::sbus::LogLine(::sbus::LogLevel::level)

// SBUS_LOG for lines that outsiders can cause at will (refused messages,
// error replies): rate limited per `kind`, a fixed name (log_admit()).
#define SBUS_LOG_LIMITED(level, kind)                                                                  \
  (!::sbus::log_enabled(::sbus::LogLevel::level) || !::sbus::log_admit(::sbus::LogLevel::level, kind)) \
      ? (void)0                                                                                        \
      : ::sbus::LogVoidify() & ::sbus::LogLine(::sbus::LogLevel::level)
