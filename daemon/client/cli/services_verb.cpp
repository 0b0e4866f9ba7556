// sbus services: what one node serves, from the answer of NODE.sbus.stats
// (answered by the node's worker on the broker the sender reaches).
#include <cstdio>
#include <optional>

#include "client/cli/output.hpp"
#include "client/cli/runners.hpp"

namespace sbus::cli {
namespace {

std::string member_text(const rapidjson::Value& object, const char* key) {
  const auto found = object.FindMember(key);
  return found != object.MemberEnd() && found->value.IsString()
             ? std::string(found->value.GetString(), found->value.GetStringLength())
             : std::string();
}

// One service of the answer: {"name", "kind", "plugin", "plugin_version",
// "version", "state", "reason"} (reason: why it is unavailable).
// "plugin_version" is what the plugin states (SBUS_PLUGIN_VERSION), present
// when it states one; "version" is the plugin's own where it states one, else
// that of the sbusd that loaded it.
JsonObject service_row(std::string_view name, const rapidjson::Value& service, const std::string& version) {
  JsonObject row;
  row.text("name", name).text("kind", member_text(service, "kind")).text("plugin", member_text(service, "plugin"));
  const std::string plugin_version = member_text(service, "plugin_version");
  if (!plugin_version.empty()) row.text("plugin_version", plugin_version);
  row.text("version", plugin_version.empty() ? version : plugin_version);
  const std::string reason = member_text(service, "unavailable");
  row.text("state", service.HasMember("unavailable") ? "unavailable" : "serving");
  if (service.HasMember("unavailable")) row.text("reason", reason);
  return row;
}

// The table of a person: one service a line.
std::string table_of(const std::vector<JsonObject>& rows) {
  std::string text;
  char line[512];
  std::snprintf(line, sizeof(line), "%-32s %-8s %-16s %s\n", "SERVICE", "KIND", "PLUGIN", "STATE");
  text += line;
  for (const JsonObject& row : rows) {
    const rapidjson::Value& r = row.value();
    const std::string state = member_text(r, "state") == "serving"
                                  ? std::string("serving")
                                  : "UNAVAILABLE: " + one_line(member_text(r, "reason"));
    // The plugin and the version it states: "math 1.2.3".
    std::string plugin = member_text(r, "plugin");
    if (const std::string stated = member_text(r, "plugin_version"); !stated.empty()) plugin += " " + stated;
    std::snprintf(line, sizeof(line), "%-32s %-8s %-16s ", one_line(member_text(r, "name")).c_str(),
                  member_text(r, "kind").c_str(), one_line(plugin).c_str());
    text += line + state + "\n";
  }
  return text;
}

}  // namespace

ExitCode run_services(const Invocation& invocation) {
  const std::string& node = invocation.operands[0];
  const Output& out = invocation.out;
  return with_sender(invocation, [&](Sender& sender) {
    const CallResult result = sender.call(node + ".sbus.stats", "[]", invocation.timeout);
    warn_dropped(sender, out);
    const JsonObject about = JsonObject().text("node", node).text("broker", sender.connected_broker());
    if (!result.ok()) {
      return out.fail(ExitCode::kServiceError, result.error_code,
                      node + ".sbus.stats failed: " + result.error_code + ": " + result.message, about);
    }
    const std::optional<JsonObject> stats = JsonObject::parse(result.message);
    if (!stats || !stats->value().HasMember("services") || !stats->value()["services"].IsObject()) {
      // A py-servicebus agent has no sbus.stats: it answers with an error above.
      return out.fail(ExitCode::kServiceError, "protocol",
                      node + " answered sbus.stats with something else: " + result.message, about);
    }
    const std::string version = member_text(stats->value(), "version");
    std::vector<JsonObject> rows;
    for (const auto& service : stats->value()["services"].GetObject()) {
      if (!service.value.IsObject()) continue;
      rows.push_back(service_row(std::string_view(service.name.GetString(), service.name.GetStringLength()),
                                 service.value, version));
    }
    JsonObject document;
    document.merge(about).text("host", member_text(stats->value(), "host")).text("version", version);
    document.objects("services", rows);
    out.result(document, table_of(rows));
    return ExitCode::kOk;
  });
}

}  // namespace sbus::cli
