// The plugins' log API (sbus/log.hpp) for contexts made outside sbusd, on
// libsbus.so's own copy of sbusd's log (base/log.cpp), which the worker
// configures through sbus_log_configure() when it loads a plugin (for the
// lines of the plugin's senders).
#include <sbus/log.hpp>
#include <sbus/plugin.hpp>

#include <mutex>
#include <string>

#include "base/log.hpp"

// A context a plugin's own test made (no sbusd behind it): the line goes to
// this library's log, stderr outside sbusd.
extern "C" SBUS_EXPORT void sbus_log_outside(const char* category, std::size_t category_size, const char* service,
                                             std::size_t service_size, int level, const char* text,
                                             std::size_t text_size) {
  const auto log_level = static_cast<sbus::LogLevel>(level);
  if (level < SBUS_LOG_DEBUG || level > SBUS_LOG_ERROR || !sbus::log_enabled(log_level)) return;
  try {
    const std::string_view category_text(category, category_size);
    const std::string_view service_text(service, service_size);
    sbus::LogLine(log_level) << sbus::LogField{sbus::LogField::Key::kService,
                                               sbus::log_value(std::string(category_text) + "." +
                                                               std::string(service_text))}
                             << sbus::log_escape(category_text) << '.' << sbus::log_escape(service_text) << ": "
                             << sbus::log_escape(std::string_view(text, text_size));
  } catch (...) {
    // Out of memory building the line: a log line is not worth failing the call.
  }
}

extern "C" SBUS_EXPORT int sbus_log_outside_enabled(int level) {
  return level >= SBUS_LOG_DEBUG && level <= SBUS_LOG_ERROR && sbus::log_enabled(static_cast<sbus::LogLevel>(level));
}

// The worker calls this after each plugin it loads, with the same values
// each time. The tag is a std::string that any thread reads while logging, so
// only the first call sets it: that call comes before any thread of a plugin
// that links this library exists.
extern "C" SBUS_EXPORT void sbus_log_configure(const char* tag, int level) {
  static std::once_flag configured;
  std::call_once(configured, [&] { sbus::log_init(tag, static_cast<sbus::LogLevel>(level)); });
}

// Likewise the format, the worker's fields and its journal writer, so that
// plugin lines are journal entries or JSON as the worker's own are.
extern "C" SBUS_EXPORT void sbus_log_configure_output(int format, const char* node, const char* broker, int worker_pid,
                                                      sbus::JournalWriter writer) {
  static std::once_flag configured;
  std::call_once(configured, [&] {
    sbus::log_set_output_with(static_cast<sbus::LogFormat>(format), sbus::LogContext{node, broker, worker_pid}, writer);
  });
}
