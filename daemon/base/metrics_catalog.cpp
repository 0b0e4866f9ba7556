#include "base/metrics_catalog.hpp"

#include <algorithm>

namespace sbus {

namespace {

constexpr MetricFamily kFamilies[] = {
    {"sbus_build_info", "gauge", "version, plugin_abi", "always 1; the labels say which sbusd runs"},
    {"sbus_uptime_seconds", "gauge", "", "seconds since the supervisor started"},
    {"sbus_process_resident_memory_bytes", "gauge", "process, broker",
     "resident memory of each process: the supervisor, each worker, the metrics server"},
    {"sbus_worker_restarts_total", "counter", "broker", "times the worker of a broker was started again"},
    {"sbus_broker_connected", "gauge", "broker", "1 while the worker of a broker is connected and serving, else 0"},
    {"sbus_broker_reconnects_total", "counter", "broker", "connections the worker made after its first one"},
    {"sbus_broker_ping_rtt_seconds", "gauge", "broker", "round trip of the last answered probe of the ping watcher"},
    {"sbus_broker_deliveries_in_flight", "gauge", "broker", "deliveries read and not yet acknowledged"},
    {"sbus_broker_blocked", "gauge", "broker", "1 while the broker blocks publishing (connection.blocked)"},
    {"sbus_service_unavailable", "gauge", "broker, service", "1 for a service whose plugin could not load or start"},
    {"sbus_service_handled_total", "counter", "service, kind, broker", "calls answered and messages done"},
    {"sbus_service_failed_total", "counter", "service, kind, broker",
     "of those, answered with an error or moved to the error queue"},
    {"sbus_service_expired_total", "counter", "service, kind, broker",
     "not run: the deadline had passed when read or when its turn came"},
    {"sbus_service_duplicates_total", "counter", "service, kind, broker",
     "deliveries recognised as already handled and not run again"},
    {"sbus_service_refused_busy_total", "counter", "service, kind, broker",
     "calls answered `busy`: the service's queue was full"},
    {"sbus_service_held_total", "counter", "service, kind, broker", "messages moved to the hold queue"},
    {"sbus_service_duration_seconds", "histogram", "service, kind, broker, le",
     "time in the service's on_call or on_message"},
    {"sbus_service_running", "gauge", "service, kind, broker", "1 while the service runs a call or message"},
    {"sbus_service_queued", "gauge", "service, kind, broker", "jobs waiting in the service's queue"},
    {"sbus_plugin_info", "gauge", "service, plugin, version, broker",
     "always 1; the version the service's plugin states (SBUS_PLUGIN_VERSION), empty for a plugin that states none"},
};

}  // namespace

std::span<const MetricFamily> metric_families() {
  return kFamilies;
}

const MetricFamily* family_of_sample(std::string_view sample_name) {
  const auto named = [](std::string_view name) -> const MetricFamily* {
    const auto* it = std::find_if(std::begin(kFamilies), std::end(kFamilies),
                                  [&](const MetricFamily& family) { return family.name == name; });
    return it == std::end(kFamilies) ? nullptr : it;
  };
  if (const MetricFamily* family = named(sample_name)) return family;
  for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (!sample_name.ends_with(suffix)) continue;
    const MetricFamily* family = named(sample_name.substr(0, sample_name.size() - suffix.size()));
    if (family != nullptr && family->type == "histogram") return family;
  }
  return nullptr;
}

}  // namespace sbus
