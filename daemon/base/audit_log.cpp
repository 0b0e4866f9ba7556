#include "base/audit_log.hpp"

#include "base/log.hpp"

namespace sbus {
namespace {

std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : log_value(text, 400)) {
    if (c == '"') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string audit_call_line(std::string_view caller, std::string_view address, std::string_view event_id, bool is_call,
                            bool allowed, std::string_view reason) {
  std::string line = "audit: caller=" + log_value(caller) + " address=" + log_value(address) +
                     " event=" + (event_id.empty() ? std::string("-") : log_value(event_id)) +
                     " kind=" + (is_call ? "call" : "message") + " decision=" + (allowed ? "allow" : "deny");
  if (!allowed) line += " reason=" + quoted(reason);
  return line;
}

void log_audit_call(std::string_view caller, std::string_view address, std::string_view event_id, bool is_call,
                    bool allowed, std::string_view reason) {
  if (allowed) {
    SBUS_LOG(kInfo) << log_caller(caller) << log_event(event_id)
                    << audit_call_line(caller, address, event_id, is_call, allowed, reason);
  } else {
    SBUS_LOG(kWarn) << log_caller(caller) << log_event(event_id)
                    << audit_call_line(caller, address, event_id, is_call, allowed, reason);
  }
}

std::string audit_change_line(std::string_view caller, std::string_view decision, std::string_view reason) {
  return "audit: caller=" + log_value(caller) + " address=- event=- kind=reload decision=" + std::string(decision) +
         " reason=" + quoted(reason);
}

}  // namespace sbus
