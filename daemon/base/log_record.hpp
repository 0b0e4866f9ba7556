// One log line as the formats see it (log.cpp builds it; log_json.cpp and
// log_journal.cpp write it). Internal to base/.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <string>
#include <string_view>

#include "base/log.hpp"

namespace sbus {

struct LogRecord {
  LogLevel level = LogLevel::kInfo;
  std::string_view utc_time;  // 2026-12-07T04:50:00.123Z
  std::string_view tag;       // "supervisor", "worker amqp://..."
  pid_t pid = 0;
  std::string_view text;  // one line, escaped, capped
  // Empty when not known.
  std::string_view node;
  std::string_view broker;
  std::string_view service;
  std::string_view event_id;
  std::string_view worker_pid;
  std::string_view caller;
};

// One JSON object and a line feed: time, level, tag, pid, message and the
// fields that are set. Valid JSON whatever the record holds: bytes that are
// not UTF-8 are written as \xNN text.
std::string log_json_line(const LogRecord& record);

// Sends the record through `writer` (sd_journal_sendv) as one entry:
// MESSAGE, PRIORITY, SYSLOG_IDENTIFIER=sbusd, SYSLOG_PID, SBUS_TAG and the fields that
// are set (NODE, BROKER, SERVICE, EVENT_ID, WORKER_PID, CALLER). False when the
// writer failed (the caller writes the line as text instead).
bool log_journal_send(JournalWriter writer, const LogRecord& record);

// Loads sbus-journal.so (from beside this program or module, then the
// installed path) once per process and returns its writer; nullptr with
// `error` set when it cannot be loaded.
JournalWriter load_journal_writer(std::string* error);

// For a process that must not map libsystemd (the supervisor): forks, once
// per process, a relay process that loads sbus-journal.so and writes each
// entry it is sent; returns the writer that sends to it. Call while the
// process has one thread. nullptr with `error` set when the module is not
// installed or the relay cannot be started.
JournalWriter start_journal_relay(std::string* error);

}  // namespace sbus
