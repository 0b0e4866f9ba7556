// sbus stats: the answer of NODE.sbus.stats through each broker, as a table
// or, with --json, as the workers wrote it.
#include <rapidjson/document.h>

#include <cstdio>
#include <map>
#include <optional>

#include "client/cli/output.hpp"
#include "client/cli/runners.hpp"

namespace sbus::cli {
namespace {

std::string text_of(const rapidjson::Value& object, const char* key) {
  return object.HasMember(key) && object[key].IsString() ? std::string(object[key].GetString()) : std::string("?");
}

double number_of(const rapidjson::Value& object, const char* key) {
  return object.HasMember(key) && object[key].IsNumber() ? object[key].GetDouble() : 0.0;
}

bool flag_of(const rapidjson::Value& object, const char* key) {
  return object.HasMember(key) && object[key].IsBool() && object[key].GetBool();
}

// The worker's line: pid, broker, uptime, reconnects, restarts, how the last
// run ended; and its blocks by a broker alarm, if any.
void print_worker(const rapidjson::Value& stats) {
  std::printf("%s (pid %.0f) via %s: up %.0f s, connected %.0f s, %.0f reconnect(s), %.0f restart(s)",
              text_of(stats, "node").c_str(), number_of(stats, "pid"), text_of(stats, "broker").c_str(),
              number_of(stats, "uptime_s"), number_of(stats, "connected_s"), number_of(stats, "reconnects"),
              number_of(stats, "restarts"));
  // The counters below start from zero with each run of the worker.
  if (stats.HasMember("last_exit") && stats["last_exit"].IsString()) {
    std::printf("; the last run %s %.0f s ago: counters since then", one_line(stats["last_exit"].GetString()).c_str(),
                number_of(stats, "last_exit_s_ago"));
  }
  std::printf("\n");
  if (number_of(stats, "blocks") > 0) {
    const bool now = flag_of(stats, "blocked");
    std::printf("blocked by the broker (resource alarm) %.0f time(s), %.1f s in all%s%s\n", number_of(stats, "blocks"),
                number_of(stats, "blocked_s"), now ? "; blocked now: " : "",
                now ? text_of(stats, "blocked_reason").c_str() : "");
  }
}

// "a, b" from the array `key` of `agent`; "-" when there is none.
std::string names_of(const rapidjson::Value& agent, const char* key) {
  std::string out;
  if (!agent.HasMember(key) || !agent[key].IsArray()) return out;
  for (const auto& name : agent[key].GetArray()) {
    if (name.IsString()) out += (out.empty() ? "" : ", ") + one_line(name.GetString());
  }
  return out.empty() ? std::string("-") : out;
}

// Other agents serving the same node, and whether they serve the same.
void print_other_agents(const rapidjson::Value& stats) {
  if (!stats.HasMember("other_agents") || !stats["other_agents"].IsArray()) return;
  for (const auto& agent : stats["other_agents"].GetArray()) {
    if (!agent.IsObject()) continue;
    const std::string services = flag_of(agent, "same_services")
                                     ? "same services (they share the calls)"
                                     : "OTHER SERVICES: only there: " + names_of(agent, "only_there") +
                                           "; only here: " + names_of(agent, "only_here");
    std::printf("another agent of this node: host %s pid %.0f, %s\n",
                agent.HasMember("host") && agent["host"].IsString() ? one_line(agent["host"].GetString()).c_str() : "?",
                number_of(agent, "pid"), services.c_str());
  }
}

// One row a service; false when a service is not an object.
bool print_services(const rapidjson::Value& services) {
  std::printf("%-32s %-8s %10s %8s %10s %8s %7s %8s %10s\n", "SERVICE", "KIND", "HANDLED", "FAILED", "BUSY_S",
              "RUNNING", "QUEUED", "EXPIRED", "DUPLICATES");
  for (const auto& service : services.GetObject()) {
    const rapidjson::Value& s = service.value;
    if (!s.IsObject()) return false;
    const char* kind = s.HasMember("kind") && s["kind"].IsString() ? s["kind"].GetString() : "?";
    if (s.HasMember("unavailable") && s["unavailable"].IsString()) {
      std::printf("%-32s %-8s UNAVAILABLE: %s\n", service.name.GetString(), kind,
                  one_line(s["unavailable"].GetString()).c_str());
      continue;
    }
    std::printf("%-32s %-8s %10.0f %8.0f %10.3f %8s %7.0f %8.0f %10.0f\n", service.name.GetString(), kind,
                number_of(s, "handled"), number_of(s, "failed"), number_of(s, "busy_s"),
                flag_of(s, "running") ? "yes" : "no", number_of(s, "queued"), number_of(s, "expired"),
                number_of(s, "duplicates"));
    if (s.HasMember("isolated_pid") && s["isolated_pid"].IsNumber()) {
      std::printf("%-32s isolated: pid %.0f\n", "", number_of(s, "isolated_pid"));
    }
  }
  return true;
}

// The version each plugin states (SBUS_PLUGIN_VERSION), one line for those
// that state one: "plugin version 1.0.a: version.which".
void print_plugin_versions(const rapidjson::Value& services) {
  std::map<std::string, std::string> plugins;  // "PLUGIN VERSION" -> its services
  for (const auto& service : services.GetObject()) {
    const rapidjson::Value& s = service.value;
    if (!s.IsObject() || !s.HasMember("plugin_version")) continue;
    std::string& names = plugins[one_line(text_of(s, "plugin")) + " " + one_line(text_of(s, "plugin_version"))];
    names += (names.empty() ? "" : ", ") + one_line(service.name.GetString());
  }
  for (const auto& [plugin, names] : plugins) std::printf("plugin %s: %s\n", plugin.c_str(), names.c_str());
}

// Deliveries that could not be handled (in the error queue), by code.
void print_refused(const rapidjson::Value& stats) {
  if (!stats.HasMember("refused_by_code") || !stats["refused_by_code"].IsObject()) return;
  std::printf("refused: %.0f", number_of(stats, "refused"));
  for (const auto& code : stats["refused_by_code"].GetObject()) {
    std::printf(" %s=%.0f", code.name.GetString(), code.value.IsNumber() ? code.value.GetDouble() : 0.0);
  }
  std::printf("\n");
}

// The answer of NODE.sbus.stats as a table; false when it is not what
// sbusd answers.
bool print_stats(const std::string& json) {
  rapidjson::Document stats;
  stats.Parse(json.data(), json.size());
  if (stats.HasParseError() || !stats.IsObject() || !stats.HasMember("services") || !stats["services"].IsObject()) {
    return false;
  }
  print_worker(stats);
  print_other_agents(stats);
  if (!print_services(stats["services"])) return false;
  print_plugin_versions(stats["services"]);
  print_refused(stats);
  return true;
}

// NODE.sbus.stats through broker `index` alone: printed as a table, or
// with --json added to `workers`.
ExitCode stats_through(const Invocation& invocation, std::size_t index, std::vector<JsonObject>* workers) {
  const Output& out = invocation.out;
  const std::string& node = invocation.operands[0];
  const std::size_t count = invocation.sender.brokers.size();
  SenderOptions one = invocation.sender;
  one.brokers = {invocation.sender.brokers[index]};
  one.retry = 0;
  one.smart_route = false;
  try {
    Sender sender(std::move(one));
    const CallResult result = sender.call(node + ".sbus.stats", "[]", invocation.timeout);
    warn_dropped(sender, out);
    const JsonObject about = JsonObject().text("node", node).text("broker", sender.connected_broker());
    if (!result.ok()) {
      return out.fail(ExitCode::kServiceError, result.error_code,
                      node + ".sbus.stats via " + sender.connected_broker() + " failed: " + result.error_code + ": " +
                          result.message,
                      about);
    }
    std::optional<JsonObject> answer = JsonObject::parse(result.message);
    const bool is_stats = answer && answer->value().HasMember("services") && answer->value()["services"].IsObject() &&
                          (out.json() || print_stats(result.message));
    if (!is_stats) {
      return out.fail(ExitCode::kServiceError, "protocol",
                      node + " answered sbus.stats with something else: " + result.message, about);
    }
    workers->push_back(std::move(*answer));
    return ExitCode::kOk;
  } catch (const SenderError& e) {
    return out.fail(e, "no stats through broker " + std::to_string(index + 1) + " of " + std::to_string(count));
  }
}

}  // namespace

// Through each broker in turn (a node's agent runs one worker per broker,
// each with its own counters); 0 when at least one answered, else the code
// of the last that failed. With --json: {"node": NODE, "workers": [each
// answer as the worker gave it]}.
ExitCode run_stats(const Invocation& invocation) {
  ExitCode code = ExitCode::kOk;
  std::vector<JsonObject> workers;
  for (std::size_t i = 0; i < invocation.sender.brokers.size(); ++i) {
    if (i > 0 && !invocation.out.json()) std::printf("\n");
    const ExitCode one = stats_through(invocation, i, &workers);
    if (one != ExitCode::kOk) code = one;
  }
  if (workers.empty()) return code;
  if (invocation.out.json()) {
    JsonObject document;
    document.text("node", invocation.operands[0]).objects("workers", workers);
    invocation.out.result(document, "");
  }
  return ExitCode::kOk;
}

}  // namespace sbus::cli
