// `sbus discover` on the test broker: two sbusd agents are found with their
// services and kinds within --wait; without the secret only what their
// answers say; a py-servicebus agent (which answers PING, not discovery) is
// absent until named with --ping.
#include <catch2/catch.hpp>

#include <rapidjson/document.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::ProcessResult;
using sbus_test::RawAmqp;
using sbus_test::run_cli;

namespace {

std::string string_of(const rapidjson::Value& value) {
  return value.IsString() ? std::string(value.GetString(), value.GetStringLength()) : std::string("(not a string)");
}

// The JSON lines of `out`, each parsed strictly, by node.
std::multimap<std::string, rapidjson::Document> agents_of(const std::string& out) {
  std::multimap<std::string, rapidjson::Document> agents;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    rapidjson::Document agent;
    agent.Parse<rapidjson::kParseValidateEncodingFlag>(line.data(), line.size());
    INFO(line);
    REQUIRE_FALSE(agent.HasParseError());
    REQUIRE(agent.IsObject());
    const std::string node = string_of(agent["node"]);
    agents.emplace(node, std::move(agent));
  }
  return agents;
}

// The service names and kinds of one agent's line: "math.add=rpc".
std::vector<std::string> services_of(const rapidjson::Value& agent) {
  std::vector<std::string> services;
  for (const auto& service : agent["services"].GetArray()) {
    services.push_back(string_of(service["name"]) + "=" +
                       (service["kind"].IsNull() ? std::string("null") : string_of(service["kind"])));
  }
  return services;
}

bool has(const std::vector<std::string>& all, const std::string& one) {
  return std::find(all.begin(), all.end(), one) != all.end();
}

// A py-servicebus agent as far as PING goes: its node's queue bound to the
// exchange, answering the body PING with PONG on a thread of its own, and
// nothing else (no discovery).
class PingOnlyAgent {
 public:
  explicit PingOnlyAgent(std::string node) : node_(std::move(node)) {
    amqp_connection_state_t c = connection_.get();
    const amqp_bytes_t exchange = amqp_cstring_bytes("py-servicebus");
    amqp_exchange_declare(c, 1, exchange, amqp_cstring_bytes("direct"), 0, 0, 0, 0, amqp_empty_table);
    connection_.check("declare exchange");
    amqp_queue_declare(c, 1, amqp_cstring_bytes(node_.c_str()), 0, 0, 0, 1, amqp_empty_table);
    connection_.check("declare queue");
    amqp_queue_bind(c, 1, amqp_cstring_bytes(node_.c_str()), exchange, amqp_cstring_bytes(node_.c_str()),
                    amqp_empty_table);
    connection_.check("bind queue");
    amqp_basic_consume(c, 1, amqp_cstring_bytes(node_.c_str()), amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
    connection_.check("consume");
    thread_ = std::thread([this] {
      while (!stop_) {
        std::optional<RawAmqp::Message> message = connection_.receive(100ms);
        if (message && message->body == "PING" && message->has_reply_to) {
          connection_.publish("", message->reply_to, "PONG", {}, message->correlation_id);
        }
      }
    });
  }
  ~PingOnlyAgent() {
    stop_ = true;
    thread_.join();
  }
  const std::string& node() const { return node_; }

 private:
  std::string node_;
  RawAmqp connection_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE("sbus discover finds every sbusd agent on the bus with its services", "[cli][discover]") {
  sbus_test::SbusdProcess first;
  sbus_test::SbusdOptions options;
  options.services_yaml = "  - name: math.add\n    plugin: math\n";
  sbus_test::SbusdProcess second(options);
  const std::string secret_file = first.secret_file();
  std::vector<std::string> args = {"discover", "--json", "--broker", sbus_test::broker_uri()};

  SECTION("with the secret: version, uptime and kinds") {
    for (const std::string& arg : {std::string("--secret-file"), secret_file}) args.push_back(arg);
    const ProcessResult run = run_cli(args, 30s);
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    const auto agents = agents_of(run.out);
    REQUIRE(agents.count(first.node()) == 1);
    REQUIRE(agents.count(second.node()) == 1);
    const rapidjson::Value& one = agents.find(first.node())->second;
    CHECK(string_of(one["host"]) != "");
    CHECK(one["pid"].GetInt64() > 0);
    CHECK(one["pid"].GetInt64() != first.pid());  // the worker's, not the supervisor's
    CHECK(string_of(one["version"]) != "");
    CHECK(one["uptime_s"].IsNumber());
    CHECK(string_of(one["broker"]).find("127.0.0.1") != std::string::npos);
    CHECK(string_of(one["found_by"]) == "discover");
    const std::vector<std::string> services = services_of(one);
    CHECK(has(services, "math.add=rpc"));
    CHECK(has(services, "test.record=message"));
    CHECK(services_of(agents.find(second.node())->second) == std::vector<std::string>{"math.add=rpc"});
    // A discovery request is no agent of the node: nothing logged of it.
    CHECK(first.log().find("another agent serves node") == std::string::npos);
  }
  SECTION("without the secret: what the answers say, no more") {
    const ProcessResult run = run_cli(args, 30s);
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    const auto agents = agents_of(run.out);
    REQUIRE(agents.count(second.node()) == 1);
    const rapidjson::Value& two = agents.find(second.node())->second;
    CHECK(two["version"].IsNull());
    CHECK(two["uptime_s"].IsNull());
    CHECK(services_of(two) == std::vector<std::string>{"math.add=null"});
  }
  SECTION("as a table, within --wait") {
    for (const std::string& arg :
         {std::string("--secret-file"), secret_file, std::string("--wait"), std::string("1")}) {
      args.push_back(arg);
    }
    args.erase(args.begin() + 1);  // no --json
    const ProcessResult run = run_cli(args, 30s);
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    CHECK(run.out.rfind("NODE ", 0) == 0);
    CHECK(run.out.find(first.node()) != std::string::npos);
    CHECK(run.out.find("test.record(message)") != std::string::npos);
    std::cout << "[discover]\n" << run.out << std::flush;
  }
  SECTION("through each broker listed, all within the same window; one that cannot be reached is named") {
    sbus_test::DeadPort dead;
    for (const std::string& arg : {std::string("--broker"), sbus_test::broker_uri(), std::string("--broker"),
                                   dead.uri(), std::string("--wait"), std::string("1")}) {
      args.push_back(arg);
    }
    const ProcessResult run = run_cli(args, 30s);
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    // The test broker is listed twice: each worker answers on both connections.
    CHECK(agents_of(run.out).count(first.node()) == 2);
    CHECK(run.err.find("\"exit_name\":\"unreachable\"") != std::string::npos);
  }
  SECTION("no broker that can be reached: exit 4") {
    sbus_test::DeadPort dead;
    const ProcessResult run = run_cli({"discover", "--json", "--broker", dead.uri()}, 30s);
    CHECK(run.exit_code == 4);
    CHECK(run.out.empty());
  }
  SECTION("a --wait that is not a positive number") {
    args.push_back("--wait");
    args.push_back("0");
    const ProcessResult run = run_cli(args, 30s);
    CHECK(run.exit_code == 2);
    CHECK(run.err.find("--wait must be a positive number") != std::string::npos);
  }
}

TEST_CASE("sbus discover --ping lists a py-servicebus agent, which does not answer discovery", "[cli][discover]") {
  sbus_test::SbusdProcess sbusd;
  PingOnlyAgent py(sbus_test::unique_node());
  std::vector<std::string> args = {"discover", "--json", "--wait", "1", "--broker", sbus_test::broker_uri()};

  const ProcessResult without = run_cli(args, 30s);
  CHECK(without.exit_code == 0);
  CHECK(agents_of(without.out).count(py.node()) == 0);
  CHECK(agents_of(without.out).count(sbusd.node()) == 1);

  for (const std::string& arg : {std::string("--ping"), py.node(), sbusd.node()}) args.push_back(arg);
  const ProcessResult with = run_cli(args, 30s);
  INFO(with.out << with.err);
  CHECK(with.exit_code == 0);
  const auto agents = agents_of(with.out);
  REQUIRE(agents.count(py.node()) == 1);
  CHECK(string_of(agents.find(py.node())->second["found_by"]) == "ping");
  // Found by discovery already: listed once.
  CHECK(agents.count(sbusd.node()) == 1);

  SECTION("a node of --ping that nobody serves is an error; the others are listed all the same") {
    args.push_back(sbus_test::unique_node());
    const ProcessResult nobody = run_cli(args, 30s);
    CHECK(nobody.exit_code == 1);
    CHECK(nobody.err.find("\"code\":\"unroutable\"") != std::string::npos);
    CHECK(agents_of(nobody.out).count(py.node()) == 1);
  }
}

TEST_CASE("bash completion offers the node names and addresses that sbus discover finds on the bus",
          "[cli][discover][completion]") {
  sbus_test::SbusdProcess sbusd;
  sbus_test::TempDir dir;
  const std::string script = dir.file("sbus.bash");
  sbus_test::write_file(script, run_cli({"completion", "bash"}).out);
  // What _sbus offers for the word COMP_CWORD of `sbus VERB ... --broker
  // URI`, one a line; XDG_RUNTIME_DIR holds the completion's cache.
  const auto complete = [&](const std::vector<std::string>& words, int cword) {
    std::vector<std::string> args = {"XDG_RUNTIME_DIR=" + dir.path(),
                                     "bash",
                                     "-c",
                                     "source \"$1\"; cword=$2; shift 2; COMP_WORDS=(\"$@\"); COMP_CWORD=$cword; _sbus; "
                                     "printf '%s\\n' \"${COMPREPLY[@]}\"",
                                     "_",
                                     script,
                                     std::to_string(cword),
                                     SBUS_BUILD_DIR "/bin/sbus"};
    args.insert(args.end(), words.begin(), words.end());
    for (const std::string& arg : {std::string("--broker"), sbus_test::broker_uri()}) args.push_back(arg);
    return sbus_test::run_program("/usr/bin/env", args, 30s);
  };
  const ProcessResult nodes = complete({"ping", ""}, 2);
  INFO(nodes.out << nodes.err);
  CHECK(nodes.exit_code == 0);
  CHECK(("\n" + nodes.out).find("\n" + sbusd.node() + "\n") != std::string::npos);
  const ProcessResult addresses = complete({"call", sbusd.node() + ".m"}, 2);
  INFO(addresses.out << addresses.err);
  CHECK(addresses.out == sbusd.node() + ".math.add\n");
}
