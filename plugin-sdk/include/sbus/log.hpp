// Logging from a plugin: lines in sbusd's own log, named after the service.
//
//   void start(const sbus::ServiceContext& context) override {
//     context_ = &context;
//     sbus::log_info(context, "ready");
//   }
//   void on_message(const sbus::Request& request) override {
//     if (sbus::log_enabled(*context_, sbus::LogLevel::kDebug)) {
//       sbus::log_debug(*context_, "message " + request.id());
//     }
//   }
//
// gives, in the log of the worker that runs the service (its stderr, which
// sbusd writes to its own stderr or log_file):
//
//   2026-12-06T22:41:30.123 info [worker amqp://guest@127.0.0.1:5672/%2f pid=4242] shop.orders: ready
//
// Format and level: the line carries the time, the level and the tag and
// pid of the worker, as sbusd's own lines do, then "CATEGORY.SERVICE: " (the
// service's name in the YAML) and the text. Lines below the worker's level
// (log_level in the YAML, or sbusd --log-level) are dropped.
//
// Text: each call writes exactly one line, with one write(2), so lines of
// services, workers and sbusd never interleave. Backslash and control
// characters in `text` are escaped (\\, \n, \r, \t, \xHH), so no text can
// end the line early or forge another. Bytes from 0x80 up (UTF-8) are kept.
//
// Threads: any thread may call these functions at any time, also threads the
// plugin starts itself: they share no lock with the services and block only
// on the write. The context is the one start() received; sbusd keeps it
// valid until stop() has returned (keep a pointer or a copy).
//
// Outside sbusd (a context a test program made, which links libsbus.so),
// lines go to stderr at level info and above, with the tag "sbus".
//
// In sbusd the line goes through the C ABI's host->log (sbus/plugin.h).
#pragma once

#include <cstddef>
#include <string_view>

#include "sbus/export.hpp"
#include "sbus/plugin.h"

// libsbus.so's log, for a context made outside sbusd.
extern "C" SBUS_EXPORT void sbus_log_outside(const char* category, std::size_t category_size, const char* service,
                                             std::size_t service_size, int level, const char* text,
                                             std::size_t text_size);
extern "C" SBUS_EXPORT int sbus_log_outside_enabled(int level);

namespace sbus {

struct ServiceContext;

enum class LogLevel { kDebug = SBUS_LOG_DEBUG, kInfo = SBUS_LOG_INFO, kWarn = SBUS_LOG_WARN, kError = SBUS_LOG_ERROR };

// Writes `text` as one line of the worker's log at `level`, after
// "CATEGORY.SERVICE: " of `context`. Never throws. (These are defined in
// sbus/detail/plugin_abi.hpp, which sbus/plugin.hpp includes, beside
// ServiceContext.)
inline void log(const ServiceContext& context, LogLevel level, std::string_view text) noexcept;

// Whether a line at `level` would be written: to skip building costly text.
inline bool log_enabled(const ServiceContext& context, LogLevel level) noexcept;

inline void log_debug(const ServiceContext& context, std::string_view text) noexcept;
inline void log_info(const ServiceContext& context, std::string_view text) noexcept;
inline void log_warn(const ServiceContext& context, std::string_view text) noexcept;
inline void log_error(const ServiceContext& context, std::string_view text) noexcept;

}  // namespace sbus
