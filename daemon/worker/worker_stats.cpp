#include "worker/worker_stats.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "worker/remote_service.hpp"

namespace sbus {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void write_agents(const StatsSources& sources, Writer* out) {
  // Other agents serving this node through this broker (PeerWatch).
  out->Key("other_agents");
  out->StartArray();
  for (const PeerWatch::Peer& peer :
       sources.peers != nullptr ? sources.peers->peers() : std::vector<PeerWatch::Peer>{}) {
    out->StartObject();
    out->Key("host");
    out->String(peer.host.c_str(), static_cast<rapidjson::SizeType>(peer.host.size()));
    out->Key("pid");
    out->Int64(peer.pid);
    out->Key("same_services");
    out->Bool(peer.same_services());
    for (const auto& [key, names] :
         {std::pair{"only_there", &peer.only_there}, std::pair{"only_here", &peer.only_here}}) {
      out->Key(key);
      out->StartArray();
      for (const std::string& name : *names) out->String(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
      out->EndArray();
    }
    out->EndObject();
  }
  out->EndArray();
}

// The plugin as the config names it, the service's name inside it, and the
// version the plugin states (SBUS_PLUGIN_VERSION), when it states one.
void write_plugin(const ServiceConfig& service, const std::string& version, Writer* out) {
  out->Key("plugin");
  out->String(service.plugin.c_str(), static_cast<rapidjson::SizeType>(service.plugin.size()));
  out->Key("export");
  out->String(service.export_name.c_str(), static_cast<rapidjson::SizeType>(service.export_name.size()));
  if (version.empty()) return;
  out->Key("plugin_version");
  out->String(version.c_str(), static_cast<rapidjson::SizeType>(version.size()));
}

void write_services(const StatsSources& sources, Writer* out) {
  const auto seconds = [](auto duration) { return std::chrono::duration<double>(duration).count(); };
  const WorkerStats& counters = sources.counters;
  out->Key("services");
  out->StartObject();
  for (std::size_t i = 0; i < sources.services.size(); ++i) {
    ServiceRunner& runner = sources.services.runner(i);
    const ServiceStats& stats = counters.services[i];
    out->Key(runner.config().name.c_str(), static_cast<rapidjson::SizeType>(runner.config().name.size()));
    out->StartObject();
    out->Key("kind");
    out->String(kind_name(runner.config().kind));
    write_plugin(runner.config(), runner.plugin_version(), out);
    out->Key("handled");
    out->Uint64(stats.handled);
    out->Key("failed");
    out->Uint64(stats.failed);
    out->Key("expired");
    out->Uint64(stats.expired);
    out->Key("duplicates");
    out->Uint64(stats.duplicates);
    out->Key("busy_s");
    out->Double(seconds(stats.busy));
    out->Key("running");
    out->Bool(runner.running());
    out->Key("queued");
    out->Uint64(runner.queued());
    out->Key("queued_bytes");
    out->Uint64(runner.queued_bytes());
    out->Key("refused_busy");
    out->Uint64(stats.refused_busy);
    out->Key("held");
    out->Uint64(stats.held);
    if (runner.config().isolate) {
      // Its process (docs/isolation.md); 0 while none is connected.
      out->Key("isolated_pid");
      out->Int(isolated_pid(runner.config().name));
    }
    out->EndObject();
  }
  for (const ServiceConfig& service : sources.config.services) {
    auto down = sources.unavailable.find(service.name);
    if (down == sources.unavailable.end()) continue;
    out->Key(service.name.c_str(), static_cast<rapidjson::SizeType>(service.name.size()));
    out->StartObject();
    out->Key("kind");
    out->String(kind_name(service.kind));
    write_plugin(service, {}, out);
    out->Key("unavailable");
    out->String(down->second.c_str(), static_cast<rapidjson::SizeType>(down->second.size()));
    out->EndObject();
  }
  out->EndObject();
}

}  // namespace

// Sixty-odd lines of one flat object, field by field in the order `sbus
// stats` shows them; the nested parts are written by the functions above.
std::string stats_json(const StatsSources& sources) {
  const Config& config = sources.config;
  const WorkerHistory& history = sources.history;
  const WorkerStats& counters = sources.counters;
  const auto now = WorkerStats::Clock::now();
  const auto seconds = [](auto duration) { return std::chrono::duration<double>(duration).count(); };
  rapidjson::StringBuffer text;
  rapidjson::Writer<rapidjson::StringBuffer> out(text);
  out.SetMaxDecimalPlaces(3);
  out.StartObject();
  out.Key("node");
  out.String(config.node.c_str(), static_cast<rapidjson::SizeType>(config.node.size()));
  out.Key("pid");
  out.Int(static_cast<int>(getpid()));
  out.Key("version");
  out.String(SBUS_VERSION);
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  out.Key("host");
  out.String(host);
  const std::string broker = sources.uri.redacted();
  out.Key("broker");
  out.String(broker.c_str(), static_cast<rapidjson::SizeType>(broker.size()));
  out.Key("uptime_s");
  out.Double(seconds(now - counters.started_at));
  out.Key("connected_s");
  out.Double(seconds(now - counters.connected_at));
  out.Key("reconnects");
  out.Uint64(counters.connects - 1);
  // Counters start from zero with each run of the worker: say how many runs
  // there were before this one and how the last one ended.
  out.Key("restarts");
  out.Uint(history.restarts);
  if (history.last_exit_unix_ms > 0) {
    const auto ended = std::chrono::system_clock::time_point(std::chrono::milliseconds(history.last_exit_unix_ms));
    out.Key("last_exit");
    out.String(history.last_exit);
    out.Key("last_exit_s_ago");
    out.Double(seconds(std::chrono::system_clock::now() - ended));
  }
  write_agents(sources, &out);
  out.Key("blocked");
  out.Bool(sources.session.blocked);
  if (sources.session.blocked) {
    out.Key("blocked_reason");
    out.String(sources.session.blocked_reason.c_str(),
               static_cast<rapidjson::SizeType>(sources.session.blocked_reason.size()));
  }
  out.Key("blocks");
  out.Uint64(sources.session.blocks);
  out.Key("blocked_s");
  out.Double(seconds(sources.session.blocked_for));
  out.Key("replies_dropped");
  out.Uint64(sources.session.replies_dropped);
  out.Key("replies_quarantined");
  out.Uint64(sources.session.replies_quarantined);
  write_services(sources, &out);
  std::uint64_t refused = 0;
  out.Key("refused_by_code");
  out.StartObject();
  for (const auto& [code, count] : counters.refused) {
    out.Key(code.c_str(), static_cast<rapidjson::SizeType>(code.size()));
    out.Uint64(count);
    refused += count;
  }
  out.EndObject();
  out.Key("refused");
  out.Uint64(refused);
  out.EndObject();
  return std::string(text.GetString(), text.GetSize());
}

void observe_duration(ServiceStats& stats, std::chrono::nanoseconds busy) {
  const double seconds = std::chrono::duration<double>(busy).count();
  const auto* bucket = std::lower_bound(kDurationBuckets.begin(), kDurationBuckets.end(), seconds);
  ++stats.durations[static_cast<std::size_t>(bucket - kDurationBuckets.begin())];
}

namespace {

// One sample: NAME{LABELS} VALUE, then the separator.
class SampleWriter {
 public:
  void add(const char* name, const std::string& labels, double value) {
    char number[32];
    std::snprintf(number, sizeof(number), "%.17g", value);
    add(name, labels, number);
  }
  void add(const char* name, const std::string& labels, std::uint64_t value) {
    add(name, labels, std::to_string(value).c_str());
  }
  std::string take() { return std::move(text_); }

 private:
  void add(const char* name, const std::string& labels, const char* value) {
    text_ += name;
    if (!labels.empty()) text_ += "{" + labels + "}";
    text_ += ' ';
    text_ += value;
    text_ += kMetricsSeparator;
  }
  std::string text_;
};

// A label value as the text format writes it.
std::string escape_label(const std::string& value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
    } else if (c == kMetricsSeparator) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

void write_histogram(SampleWriter& out, const std::string& labels, const ServiceStats& stats) {
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b < kDurationBuckets.size(); ++b) {
    cumulative += stats.durations[b];
    char bound[32];
    std::snprintf(bound, sizeof(bound), "%g", kDurationBuckets[b]);
    out.add("sbus_service_duration_seconds_bucket", labels + ",le=\"" + bound + "\"", cumulative);
  }
  cumulative += stats.durations.back();
  out.add("sbus_service_duration_seconds_bucket", labels + ",le=\"+Inf\"", cumulative);
  out.add("sbus_service_duration_seconds_sum", labels, std::chrono::duration<double>(stats.busy).count());
  out.add("sbus_service_duration_seconds_count", labels, cumulative);
}

}  // namespace

std::string metrics_report(const StatsSources& sources, std::size_t in_flight) {
  SampleWriter out;
  const WorkerStats& counters = sources.counters;
  out.add("sbus_broker_reconnects_total", "", counters.connects > 0 ? counters.connects - 1 : 0);
  out.add("sbus_broker_ping_rtt_seconds", "", std::chrono::duration<double>(sources.session.ping_rtt).count());
  out.add("sbus_broker_deliveries_in_flight", "", std::uint64_t{in_flight});
  out.add("sbus_broker_blocked", "", std::uint64_t{sources.session.blocked ? 1U : 0U});
  for (std::size_t i = 0; i < sources.services.size() && i < counters.services.size(); ++i) {
    ServiceRunner& runner = sources.services.runner(i);
    const ServiceStats& stats = counters.services[i];
    const std::string labels =
        "service=\"" + escape_label(runner.config().name) + "\",kind=\"" + kind_name(runner.config().kind) + "\"";
    out.add("sbus_service_handled_total", labels, stats.handled);
    out.add("sbus_service_failed_total", labels, stats.failed);
    out.add("sbus_service_expired_total", labels, stats.expired);
    out.add("sbus_service_duplicates_total", labels, stats.duplicates);
    out.add("sbus_service_refused_busy_total", labels, stats.refused_busy);
    out.add("sbus_service_held_total", labels, stats.held);
    write_histogram(out, labels, stats);
    out.add("sbus_service_running", labels, std::uint64_t{runner.running() ? 1U : 0U});
    out.add("sbus_service_queued", labels, std::uint64_t{runner.queued()});
    // Every service, so that the family is always there; an empty version
    // for a plugin that states none.
    out.add("sbus_plugin_info",
            "service=\"" + escape_label(runner.config().name) + "\",plugin=\"" + escape_label(runner.config().plugin) +
                "\",version=\"" + escape_label(runner.plugin_version()) + "\"",
            std::uint64_t{1});
  }
  return out.take();
}

}  // namespace sbus
