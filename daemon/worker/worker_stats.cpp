#include "worker/worker_stats.hpp"

#include <unistd.h>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

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
    out->Key("handled");
    out->Uint64(stats.handled);
    out->Key("failed");
    out->Uint64(stats.failed);
    out->Key("expired");
    out->Uint64(stats.expired);
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
    out->EndObject();
  }
  for (const ServiceConfig& service : sources.config.services) {
    auto down = sources.unavailable.find(service.name);
    if (down == sources.unavailable.end()) continue;
    out->Key(service.name.c_str(), static_cast<rapidjson::SizeType>(service.name.size()));
    out->StartObject();
    out->Key("kind");
    out->String(kind_name(service.kind));
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

}  // namespace sbus
