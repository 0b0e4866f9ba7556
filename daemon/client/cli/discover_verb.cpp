// sbus discover: every sbusd agent on the bus, from their answers to one
// discovery request on the fanout exchange EXCHANGE.sbus.discover (see
// worker/peer_watch.hpp), through each broker; with the secret, the details
// from each node's signed sbus.stats; with --ping, nodes that answer PING
// (py-servicebus agents do not answer discovery).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <future>
#include <map>
#include <optional>
#include <tuple>

#include "amqp/amqp_connection.hpp"
#include "base/broker_uri.hpp"
#include "base/error.hpp"
#include "client/cli/output.hpp"
#include "client/cli/runners.hpp"

namespace sbus::cli {
namespace {

using Clock = std::chrono::steady_clock;

// One worker of an agent, as it answered.
struct Agent {
  std::string node;
  std::string host;
  long pid = 0;
  std::string broker;                 // the broker it answered through (password hidden)
  std::vector<std::string> services;  // CATEGORY.SERVICE
  std::string found_by = "discover";  // or "ping"
};

std::string text_member(const rapidjson::Value& object, const char* key) {
  const auto found = object.FindMember(key);
  return found != object.MemberEnd() && found->value.IsString()
             ? std::string(found->value.GetString(), found->value.GetStringLength())
             : std::string();
}

// The answer of a worker, or nullopt when it is not one (an older sbusd
// names no node).
std::optional<Agent> agent_of(const std::string& body, const std::string& broker) {
  const std::optional<JsonObject> answer = JsonObject::parse(body);
  if (!answer) return std::nullopt;
  const rapidjson::Value& json = answer->value();
  Agent agent;
  agent.node = text_member(json, "node");
  agent.host = text_member(json, "host");
  agent.broker = broker;
  if (agent.node.empty() || !json.HasMember("pid") || !json["pid"].IsInt64()) return std::nullopt;
  agent.pid = static_cast<long>(json["pid"].GetInt64());
  if (json.HasMember("services") && json["services"].IsArray()) {
    for (const auto& name : json["services"].GetArray()) {
      if (name.IsString()) agent.services.emplace_back(name.GetString(), name.GetStringLength());
    }
  }
  return agent;
}

std::string request_body() {
  JsonObject request;
  request.text("instance", "sbus-discover-" + std::to_string(::getpid())).text("node", "").text("host", "");
  request.integer("pid", ::getpid()).texts("services", {}).flag("answer", false).flag("discover", true);
  return request.str();
}

ConnectOptions connect_options_of(const SenderOptions& sender) {
  ConnectOptions options;
  options.connect_timeout = sender.connect_timeout;
  options.heartbeat_seconds = 0;
  options.connection_name = "sbus discover";
  options.tls.ca_file = sender.tls_ca_file;
  options.tls.cert_file = sender.tls_cert_file;
  options.tls.key_file = sender.tls_key_file;
  options.tls.verify = sender.tls_verify;
  return options;
}

// What one broker gave: the agents that answered through it, or why none.
struct BrokerAnswers {
  std::vector<Agent> agents;
  std::string note;   // no exchange there: no agent answers discovery
  std::string error;  // the broker could not be asked
};

// Publishes the request through `broker_text` and collects the answers
// until `until`, on a connection of its own (each broker on its thread).
// No agent has declared the exchange yet (NOT_FOUND): none found there.
// Throws Error when the broker cannot be reached.
std::vector<Agent> ask_broker(const Invocation& invocation, const std::string& broker_text, Clock::time_point until,
                              std::string* note) {
  BrokerUri uri;
  std::string error;
  if (!parse_broker_uri(broker_text, &uri, &error)) throw Error(broker_text + ": " + error);
  AmqpConnection connection = AmqpConnection::open(uri, connect_options_of(invocation.sender));
  amqp_connection_state_t c = connection.get();
  const std::string reply_to = "amq.rabbitmq.reply-to";
  amqp_basic_consume(c, kChannel, to_bytes(reply_to), amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
  connection.check_last("consume from " + reply_to);
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
  props.reply_to = to_bytes(reply_to);
  props.content_type = amqp_cstring_bytes("application/json");
  const std::string exchange = invocation.sender.exchange + ".sbus.discover";
  const std::string body = request_body();
  connection.check_status(
      amqp_basic_publish(c, kChannel, to_bytes(exchange), amqp_empty_bytes, 0, 0, &props, to_bytes(body)),
      "publish to " + exchange);
  std::vector<Agent> agents;
  for (auto now = Clock::now(); now < until; now = Clock::now()) {
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(until - now);
    timeval timeout{static_cast<time_t>(left.count() / 1000000), static_cast<suseconds_t>(left.count() % 1000000)};
    amqp_maybe_release_buffers(c);
    amqp_envelope_t envelope{};
    const amqp_rpc_reply_t reply = amqp_consume_message(c, &envelope, &timeout, 0);
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_TIMEOUT) break;
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
      // The channel closed: the exchange does not exist, so no sbusd that
      // answers discovery has run on this broker.
      *note = ("sbus: no agent answers discovery through " + uri.redacted() + " (no exchange " + exchange + ")\n");
      break;
    }
    connection.check(reply, "read discovery answers");
    std::optional<Agent> agent = agent_of(bytes_to_string(envelope.message.body), uri.redacted());
    amqp_destroy_envelope(&envelope);
    if (agent) agents.push_back(std::move(*agent));
  }
  return agents;
}

}  // namespace

namespace {

// What a node's signed sbus.stats adds: the version, the uptime of the
// worker that answered, each service's kind and the version its plugin
// states (SBUS_PLUGIN_VERSION), when it states one.
struct NodeDetails {
  std::string version;
  long pid = 0;
  double uptime_s = 0;
  std::map<std::string, std::string> kinds;
  std::map<std::string, std::string> plugin_versions;
};

// sbus.stats of every node, pipelined on one sender; a node that does not
// answer in time has no details (discovery lists it all the same).
std::map<std::string, NodeDetails> details_of(const Invocation& invocation, const std::vector<std::string>& nodes) {
  std::map<std::string, NodeDetails> details;
  Sender sender(invocation.sender);
  std::map<std::string, std::string> node_of_call;
  for (const std::string& node : nodes) {
    node_of_call[sender.call_async(node + ".sbus.stats", "[]", invocation.timeout)] = node;
  }
  // No longer than discovery's own window (or --timeout, if shorter): an
  // agent that answered discovery and then stopped, or froze, costs its
  // details, not the whole listing.
  const auto window = std::chrono::milliseconds(static_cast<long long>(invocation.line.wait_seconds * 1000));
  const auto until = Clock::now() + std::min<std::chrono::milliseconds>(invocation.timeout, window);
  while (sender.in_flight() > 0 && Clock::now() < until) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    const std::optional<AsyncReply> reply = sender.next_reply(left);
    if (!reply) break;
    const std::optional<JsonObject> stats = JsonObject::parse(reply->result.message);
    if (!reply->result.ok() || !stats || !stats->value().HasMember("services")) continue;
    const rapidjson::Value& json = stats->value();
    NodeDetails& node = details[node_of_call[reply->id]];
    node.version = text_member(json, "version");
    node.pid = json.HasMember("pid") && json["pid"].IsInt() ? json["pid"].GetInt() : 0;
    node.uptime_s = json.HasMember("uptime_s") && json["uptime_s"].IsNumber() ? json["uptime_s"].GetDouble() : 0;
    if (!json["services"].IsObject()) continue;
    for (const auto& service : json["services"].GetObject()) {
      if (service.value.IsObject()) {
        const std::string name(service.name.GetString(), service.name.GetStringLength());
        node.kinds[name] = text_member(service.value, "kind");
        if (service.value.HasMember("plugin_version")) {
          node.plugin_versions[name] = text_member(service.value, "plugin_version");
        }
      }
    }
  }
  warn_dropped(sender, invocation.out);
  return details;
}

// The nodes of --ping that answer PING and were not found by discovery.
std::vector<Agent> pinged(const Invocation& invocation, const std::vector<Agent>& found, ExitCode* code) {
  std::vector<Agent> agents;
  for (const std::string& node : invocation.line.ping_nodes) {
    const bool known = std::any_of(found.begin(), found.end(), [&](const Agent& a) { return a.node == node; });
    if (known) continue;
    const ExitCode one = with_sender(invocation, [&](Sender& sender) {
      if (!sender.ping(node, invocation.timeout)) {
        return invocation.out.fail(ExitCode::kTimeout, "timeout", "no answer to PING from " + node,
                                   JsonObject().text("node", node));
      }
      Agent agent;
      agent.node = node;
      agent.broker = sender.connected_broker();
      agent.found_by = "ping";
      agents.push_back(agent);
      return ExitCode::kOk;
    });
    if (one != ExitCode::kOk) *code = one;
  }
  return agents;
}

// One agent: a JSON line, or a line of the table.
void print_agent(const Output& out, const Agent& agent, const NodeDetails* details) {
  JsonObject json;
  json.text("node", agent.node).text("host", agent.host).integer("pid", agent.pid).text("broker", agent.broker);
  json.text("found_by", agent.found_by);
  const bool same_worker = details != nullptr && details->pid == agent.pid;
  if (details != nullptr && !details->version.empty()) json.text("version", details->version);
  if (details == nullptr || details->version.empty()) json.null("version");
  if (same_worker) json.number("uptime_s", details->uptime_s);
  if (!same_worker) json.null("uptime_s");
  std::vector<JsonObject> services;
  std::string names;
  for (const std::string& name : agent.services) {
    JsonObject service;
    service.text("name", name);
    std::string kind;  // empty: not known (no details)
    if (details != nullptr) {
      const auto found = details->kinds.find(name);
      if (found != details->kinds.end()) kind = found->second;
    }
    if (kind.empty()) {
      service.null("kind");
    } else {
      service.text("kind", kind);
    }
    if (details != nullptr) {
      const auto stated = details->plugin_versions.find(name);
      if (stated != details->plugin_versions.end()) service.text("plugin_version", stated->second);
    }
    names += (names.empty() ? "" : ",") + one_line(name) + (kind.empty() ? "" : "(" + one_line(kind) + ")");
    services.push_back(std::move(service));
  }
  json.objects("services", services);
  char line[256];
  std::snprintf(line, sizeof(line), "%-20s %-16s %7ld %-10s %-36s %8s ", one_line(agent.node).c_str(),
                one_line(agent.host.empty() ? "-" : agent.host).c_str(), agent.pid,
                details != nullptr && !details->version.empty() ? one_line(details->version).c_str() : "-",
                one_line(agent.broker).c_str(),
                same_worker ? std::to_string(static_cast<long>(details->uptime_s)).c_str() : "-");
  out.item(json, line + (agent.found_by == "ping" ? std::string("(answers PING)") : names.empty() ? "-" : names));
}

// Asks every broker within the same window, each on a thread of its own,
// and gathers the agents that answered; *asked counts the brokers reached
// (a broker that could not be asked is said as an error).
std::vector<Agent> ask_every_broker(const Invocation& invocation, Clock::time_point until, std::size_t* asked) {
  std::vector<std::future<BrokerAnswers>> asking;
  for (const std::string& broker : invocation.sender.brokers) {
    asking.push_back(std::async(std::launch::async, [&invocation, broker, until] {
      BrokerAnswers answers;
      try {
        answers.agents = ask_broker(invocation, broker, until, &answers.note);
      } catch (const Error& e) {
        answers.error = e.what();
      }
      return answers;
    }));
  }
  std::vector<Agent> agents;
  for (std::future<BrokerAnswers>& one : asking) {
    const BrokerAnswers answers = one.get();
    if (!answers.error.empty()) {
      invocation.out.fail(ExitCode::kUnreachable, "connect", answers.error);  // the exit code only if none was asked
      continue;
    }
    ++*asked;
    invocation.out.note(answers.note);
    agents.insert(agents.end(), answers.agents.begin(), answers.agents.end());
  }
  return agents;
}

}  // namespace

// Through each broker, all within --wait; then the details and --ping. Exit
// 0 unless no broker could be asked (4) or a node of --ping did not answer.
ExitCode run_discover(const Invocation& invocation) {
  const Output& out = invocation.out;
  if (!(invocation.line.wait_seconds > 0) || !std::isfinite(invocation.line.wait_seconds)) {
    return out.fail(ExitCode::kUsage, "usage", "--wait must be a positive number of seconds");
  }
  const auto until =
      Clock::now() + std::chrono::milliseconds(static_cast<long long>(invocation.line.wait_seconds * 1000));
  std::size_t asked = 0;
  ExitCode code = ExitCode::kOk;
  std::vector<Agent> agents = ask_every_broker(invocation, until, &asked);
  std::vector<std::string> nodes;
  for (const Agent& agent : agents) nodes.push_back(agent.node);
  std::sort(nodes.begin(), nodes.end());
  nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
  std::map<std::string, NodeDetails> details;
  if (!invocation.sender.secret.empty() && !nodes.empty()) {
    try {
      details = details_of(invocation, nodes);
    } catch (const SenderError& e) {
      out.warn(std::string("no details (sbus.stats): ") + e.what());
    }
  }
  for (const Agent& agent : pinged(invocation, agents, &code)) agents.push_back(agent);
  std::sort(agents.begin(), agents.end(), [](const Agent& a, const Agent& b) {
    return std::tie(a.node, a.host, a.pid, a.broker) < std::tie(b.node, b.host, b.pid, b.broker);
  });
  if (!out.json()) {
    char header[256];
    std::snprintf(header, sizeof(header), "%-20s %-16s %7s %-10s %-36s %8s %s\n", "NODE", "HOST", "PID", "VERSION",
                  "BROKER", "UPTIME_S", "SERVICES");
    out.text_out() << header;
  }
  for (const Agent& agent : agents) {
    const auto found = details.find(agent.node);
    print_agent(out, agent, found != details.end() ? &found->second : nullptr);
  }
  out.note(std::to_string(agents.size()) + " agent(s)" +
           (invocation.sender.secret.empty() ? " (without the secret: no version, uptime or kinds)" : "") + "\n");
  return asked == 0 ? ExitCode::kUnreachable : code;
}

}  // namespace sbus::cli
