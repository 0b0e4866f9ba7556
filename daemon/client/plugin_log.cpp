// The plugins' log API (sbus/log.hpp), on libsbus.so's own copy of sbusd's
// log (base/log.cpp), which the worker configures through
// sbus_log_configure() when it loads a plugin.
#include <sbus/log.hpp>
#include <sbus/plugin.hpp>

#include <mutex>
#include <string>

#include "base/log.hpp"

namespace sbus {

void log(const ServiceContext& context, LogLevel level, std::string_view text) noexcept {
  if (!log_enabled(level)) return;
  try {
    LogLine(level) << LogField{LogField::Key::kService, log_value(context.category + "." + context.service)}
                   << log_escape(context.category) << '.' << log_escape(context.service) << ": " << log_escape(text);
  } catch (...) {
    // Out of memory building the line: a log line is not worth failing the call.
  }
}

bool log_enabled(const ServiceContext& /*context*/, LogLevel level) noexcept {
  return log_enabled(level);
}

}  // namespace sbus

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
