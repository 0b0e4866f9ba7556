// One log line per call, written with a single write(2) to stderr so that
// lines of the supervisor and of every worker (which share its stderr) never
// interleave. Thread-safe. A line is always one line: control characters in
// the text (a line feed from a caller's id) are written as \xNN, and a text
// over 8 KiB is cut with a marker.
//
//   SBUS_LOG(kWarn) << log_service(name) << log_event(id) << "event " << id << ": " << what;
//
// A line goes out in one of three formats (log_set_output()): text, one JSON
// object a line, or a native journal entry (one datagram a line) when
// stderr is systemd's journal stream. The journal and JSON carry fields
// besides the text: those of the process (NODE, BROKER, WORKER_PID) and
// those a line names with log_service() and friends.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

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

// sd_journal_sendv(), from sbus-journal.so.
using JournalWriter = int (*)(const ::iovec* fields, int count);

// How lines are written. kAuto (log_format: auto, the default) is kJournal
// when stderr is the journal's stream (stderr_is_journal()), else kText.
enum class LogFormat { kAuto, kText, kJson, kJournal };
// Parses "auto", "text", "json"; false if unknown.
bool parse_log_format(std::string_view text, LogFormat* format);
const char* log_format_name(LogFormat format);

// Whether stderr is the stream systemd connected to the journal: the
// environment's JOURNAL_STREAM ("DEVICE:INODE") names stderr's device and
// inode (systemd.exec(5)). False once stderr was pointed elsewhere (a
// log_file's pipe, a redirection), also when JOURNAL_STREAM is inherited.
bool stderr_is_journal();

// The fields every line of this process carries in the JSON and journal
// formats; empty (0) ones are left out. A worker sets all three, the
// supervisor the node.
struct LogContext {
  std::string node;
  std::string broker;  // redacted URI
  pid_t worker_pid = 0;
};

// Sets the format (kAuto resolved here) and the process's fields. Call
// after log_init(), before threads start. kJournal loads the journal writer
// (sbus-journal.so, which maps libsystemd); when it cannot be loaded, or
// `format` is kJournal but stderr is not the journal, lines stay text and
// `error` (if given) says why. Returns the format now in use.
// How a process reaches the journal: sbus-journal.so in the process
// itself, or a relay process that maps it (for the supervisor, whose
// footprint libsystemd and its libraries would add 1.4 MB to).
enum class JournalVia { kInProcess, kRelay };
LogFormat log_set_output(LogFormat format, LogContext context, std::string* error = nullptr,
                         JournalVia via = JournalVia::kInProcess);

// The supervisor's end of its relay's socket, -1 when none was started. A
// worker (a fork of the supervisor, with its own copy of this code in
// sbusd-worker.so) adopts it: its entries then go through the supervisor's
// relay too, each one packet, so that no two are ever mixed, and the worker
// maps no libsystemd. After adopt_journal_relay(), log_set_output() with
// JournalVia::kRelay sends to it.
int journal_relay_fd();
void adopt_journal_relay(int fd);
bool journal_relay_adopted();

LogFormat log_format();
const LogContext& log_context();
// log_set_output() with the format resolved and the writer loaded already
// (by the worker's copy of this code, for libsbus.so's: kLogOutputSymbol).
// A kJournal without a writer means kText.
void log_set_output_with(LogFormat format, LogContext context, JournalWriter writer);

// The journal writer in use (nullptr unless the format is kJournal): a
// worker hands it to libsbus.so's copy of this code (kLogOutputSymbol).
JournalWriter log_journal_writer();

// A field of one line, for the JSON and journal formats: a value from
// outside is kept as log_value() writes it. Streamed into a line, it adds
// nothing to the text.
struct LogField {
  enum class Key { kService, kEventId, kBroker, kWorkerPid, kCaller };
  Key key;
  std::string value;
};
inline LogField log_service(std::string_view name) {
  return {LogField::Key::kService, log_value(name)};
}
inline LogField log_event(std::string_view id) {
  return {LogField::Key::kEventId, log_value(id)};
}
inline LogField log_broker(std::string_view redacted_uri) {
  return {LogField::Key::kBroker, log_value(redacted_uri)};
}
// The caller identity of an audited call (docs/security.md#audit).
inline LogField log_caller(std::string_view caller) {
  return {LogField::Key::kCaller, log_value(caller)};
}
inline LogField log_worker_pid(pid_t pid) {
  return {LogField::Key::kWorkerPid, std::to_string(pid)};
}

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
  LogLine& operator<<(LogField field) {
    fields_[static_cast<int>(field.key)] = std::move(field.value);
    return *this;
  }

 private:
  LogLevel level_;
  std::ostringstream stream_;
  std::string fields_[5];  // by LogField::Key
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
// Likewise for log_set_output(): the format in use (never kAuto), the
// process's fields and the journal writer (nullptr unless kJournal).
inline constexpr const char* kLogOutputSymbol = "sbus_log_configure_output";
using LogOutputFunction = void(int format, const char* node, const char* broker, int worker_pid, JournalWriter writer);

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
