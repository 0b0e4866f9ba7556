// The audit trail (docs/security.md#audit): one line per audited event, in
// one greppable form, through the process's log (base/log.hpp):
//   audit: caller=ID address=NODE.CATEGORY.SERVICE event=ID kind=call decision=deny reason="..."
// A call or message: kind call or message, decision allow or deny (reason
// only for deny). A change on reload: address=- event=- kind=reload and
// decision caller-added, caller-removed, keys-changed, identity-changed or
// policy-changed. Values from the wire are escaped (log_value); the reason
// comes last, quoted. Denials and changes are logged at warn, allowed calls
// at info. Thread-safe (as the log).
#pragma once

#include <string>
#include <string_view>

namespace sbus {

// The line of one call or message, without the log's prefix.
std::string audit_call_line(std::string_view caller, std::string_view address, std::string_view event_id, bool is_call,
                            bool allowed, std::string_view reason);
void log_audit_call(std::string_view caller, std::string_view address, std::string_view event_id, bool is_call,
                    bool allowed, std::string_view reason);

// The line of a change of callers, keys or policy (made by a reload).
std::string audit_change_line(std::string_view caller, std::string_view decision, std::string_view reason);

}  // namespace sbus
