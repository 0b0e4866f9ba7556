// When a service that keeps crashing its worker is switched off. Pure: the
// crash times come from the crash journal (CrashJournal::crash_times) and
// the time from the caller, so tests use made-up times.
//
// A service whose calls crashed the worker `limit` times within `cooldown`
// (counted back from its last crash) is switched off until `cooldown` after
// that last crash: a restarted worker answers its calls at once with
// `service_unavailable` instead of crashing again, while the node's other
// services serve. Afterwards it serves again, and `limit` new crashes are
// needed to switch it off again.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

namespace sbus {

struct CrashCooldownOptions {
  int limit = 3;  // 0: never switched off
  std::chrono::nanoseconds cooldown = std::chrono::seconds(60);
};

// The end of the service's cool-down (steady_clock nanoseconds, as the
// crash times), or nullopt when it serves at `now_ns`. `crash_times` oldest
// first.
std::optional<std::int64_t> cooldown_until(const std::vector<std::int64_t>& crash_times, std::int64_t now_ns,
                                           const CrashCooldownOptions& options);

}  // namespace sbus
