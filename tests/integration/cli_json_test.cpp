// `sbus --json` and `sbus services` against a real sbusd on the test
// broker: each verb prints one JSON document on stdout, or one JSON error
// line on stderr with the exit code of the table, and what a service
// answers (hostile text included) comes out as valid JSON.
#include <catch2/catch.hpp>

#include <rapidjson/document.h>

#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::ProcessResult;
using sbus_test::run_cli;

namespace {

// `text` as one strict JSON document (valid UTF-8 required); fails the test
// when it is not.
rapidjson::Document json_of(const std::string& text) {
  INFO(text.substr(0, 400));
  std::string line = text;
  REQUIRE(!line.empty());
  REQUIRE(line.back() == '\n');
  line.pop_back();
  REQUIRE(line.find('\n') == std::string::npos);
  rapidjson::Document document;
  document.Parse<rapidjson::kParseValidateEncodingFlag>(line.data(), line.size());
  REQUIRE_FALSE(document.HasParseError());
  REQUIRE(document.IsObject());
  return document;
}

std::string string_of(const rapidjson::Value& value) {
  return std::string(value.GetString(), value.GetStringLength());
}

// `sbus ARGS... --json` with the node's broker and secret.
ProcessResult json_cli(const sbus_test::SbusdProcess& sbusd, std::vector<std::string> args) {
  args.push_back("--json");
  for (const std::string& arg : sbusd.cli_args()) args.push_back(arg);
  return run_cli(args, 30s);
}

// The error object of a failed run: stdout empty, one JSON line on stderr.
rapidjson::Document error_of(const ProcessResult& run) {
  INFO(run.err);
  CHECK(run.out.empty());
  rapidjson::Document document = json_of(run.err);
  REQUIRE(document.HasMember("error"));
  return document;
}

}  // namespace

TEST_CASE("sbus --json prints each verb's result as one JSON document", "[cli][json]") {
  sbus_test::SbusdProcess sbusd;

  SECTION("call: the service's JSON as the result") {
    const ProcessResult run = json_cli(sbusd, {"call", sbusd.address("math.add"), "[2, 3]"});
    CHECK(run.exit_code == 0);
    const rapidjson::Document document = json_of(run.out);
    CHECK(document["result"].GetInt() == 5);
    CHECK(string_of(document["address"]) == sbusd.address("math.add"));
    CHECK_FALSE(string_of(document["id"]).empty());
    CHECK(run.err.empty());
  }
  SECTION("call: hostile text comes back as valid JSON") {
    // Quotes, backslashes, control characters, a byte that is not UTF-8
    // (the echo sends it back as it came) and a long string.
    const std::string params = R"(["\"q\" \\ \\\" \u0001\u001f\n )"
                               "\xff\xc3"
                               R"( tail )" +
                               std::string(100000, 'x') + R"("])";
    const ProcessResult run = json_cli(sbusd, {"call", sbusd.address("test.echo"), params});
    INFO(run.err);
    CHECK(run.exit_code == 0);
    const rapidjson::Document document = json_of(run.out);
    REQUIRE(document.HasMember("result"));
    const std::string echoed =
        document["result"].IsArray() ? string_of(document["result"][0]) : string_of(document["result"]);
    CHECK(echoed.find("\"q\" \\ \\\" \x01\x1f\n") != std::string::npos);
    CHECK(echoed.find(std::string(100000, 'x')) != std::string::npos);
    CHECK(echoed.find('\xff') == std::string::npos);
  }
  SECTION("call: a service's error is a JSON error line, exit 1, with its code") {
    const ProcessResult run = json_cli(sbusd, {"call", sbusd.address("test.fail"), "[]"});
    CHECK(run.exit_code == 1);
    const rapidjson::Document document = error_of(run);
    CHECK(string_of(document["error"]["code"]) == "service_failed");
    CHECK(string_of(document["error"]["message"]).find("test.fail always fails") != std::string::npos);
    CHECK(document["error"]["exit"].GetInt() == 1);
    CHECK(string_of(document["error"]["address"]) == sbusd.address("test.fail"));
  }
  SECTION("call: an unknown service") {
    const ProcessResult run = json_cli(sbusd, {"call", sbusd.address("test.nosuch"), "[]"});
    CHECK(run.exit_code == 1);
    CHECK(string_of(error_of(run)["error"]["code"]) == "unknown_service");
  }
  SECTION("send: confirmed") {
    const ProcessResult run = json_cli(sbusd, {"send", sbusd.address("test.record"), "[\"json\"]"});
    CHECK(run.exit_code == 0);
    CHECK(json_of(run.out)["confirmed"].GetBool());
  }
  SECTION("publish: confirmed, and nobody subscribed is a JSON warning on stderr") {
    const std::string topic = "json-" + sbusd.node() + ".nobody.listens";
    const ProcessResult run = json_cli(sbusd, {"publish", topic, "{\"a\":\"\\\"q\\\" \\u0001\"}"});
    INFO(run.err);
    CHECK(run.exit_code == 0);
    const rapidjson::Document document = json_of(run.out);
    CHECK(string_of(document["topic"]) == topic);
    CHECK(document["confirmed"].GetBool());
    CHECK_FALSE(document["subscribed"].GetBool());
    const rapidjson::Document warning = json_of(run.err);
    REQUIRE(warning.HasMember("warning"));
    CHECK(string_of(warning["warning"]["message"]).find("nobody is subscribed to " + topic) != std::string::npos);
  }
  SECTION("ping: pong") {
    const ProcessResult run = json_cli(sbusd, {"ping", sbusd.node()});
    CHECK(run.exit_code == 0);
    const rapidjson::Document document = json_of(run.out);
    CHECK(document["pong"].GetBool());
    CHECK(string_of(document["node"]) == sbusd.node());
  }
  SECTION("a node nobody serves: unroutable, exit 1, for call, send and ping") {
    const std::string nobody = sbus_test::unique_node();
    for (const std::vector<std::string>& args : {std::vector<std::string>{"call", nobody + ".math.add", "[1]"},
                                                 {"send", nobody + ".test.record", "[1]"},
                                                 {"ping", nobody}}) {
      INFO(args[0]);
      const ProcessResult run = json_cli(sbusd, args);
      CHECK(run.exit_code == 1);
      const rapidjson::Document document = error_of(run);
      CHECK(string_of(document["error"]["code"]) == "unroutable");
      CHECK(string_of(document["error"]["exit_name"]) == "service_error");
    }
  }
  SECTION("no broker reachable: exit 4") {
    sbus_test::DeadPort dead;
    const ProcessResult run = run_cli({"ping", sbusd.node(), "--json", "--broker", dead.uri(), "--timeout", "2"}, 20s);
    CHECK(run.exit_code == 4);
    CHECK(string_of(error_of(run)["error"]["exit_name"]) == "unreachable");
  }
  SECTION("stats: each worker's answer") {
    const ProcessResult run = json_cli(sbusd, {"stats", sbusd.node()});
    CHECK(run.exit_code == 0);
    const rapidjson::Document document = json_of(run.out);
    REQUIRE(document["workers"].Size() == 1);
    const rapidjson::Value& worker = document["workers"][0];
    CHECK(string_of(worker["node"]) == sbusd.node());
    CHECK(worker["pid"].IsInt());
    CHECK(string_of(worker["services"]["math.add"]["kind"]) == "rpc");
  }
  SECTION("errors list and errors requeue") {
    const ProcessResult list = json_cli(sbusd, {"errors", "list", sbusd.node()});
    CHECK(list.exit_code == 0);
    const rapidjson::Document document = json_of(list.out);
    CHECK(document["count"].GetInt() == 0);
    CHECK(document["messages"].IsArray());
    CHECK(list.err.empty());
    const ProcessResult requeue = json_cli(sbusd, {"errors", "requeue", sbusd.node()});
    CHECK(requeue.exit_code == 0);
    CHECK(json_of(requeue.out)["requeued"].GetInt() == 0);
  }
}

TEST_CASE("sbus services lists what a node serves: kind, plugin, state", "[cli][services]") {
  sbus_test::SbusdProcess sbusd;

  SECTION("as a table") {
    std::vector<std::string> args = {"services", sbusd.node()};
    for (const std::string& arg : sbusd.cli_args()) args.push_back(arg);
    const ProcessResult run = run_cli(args, 30s);
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    std::istringstream lines(run.out);
    std::string header;
    std::getline(lines, header);
    CHECK(header.rfind("SERVICE", 0) == 0);
    CHECK(run.out.find("math.add") != std::string::npos);
    CHECK(run.out.find("message  test") != std::string::npos);
    std::cout << "[services]\n" << run.out << std::flush;
  }
  SECTION("as JSON") {
    const ProcessResult run = json_cli(sbusd, {"services", sbusd.node()});
    INFO(run.err);
    CHECK(run.exit_code == 0);
    const rapidjson::Document document = json_of(run.out);
    CHECK(string_of(document["node"]) == sbusd.node());
    CHECK_FALSE(string_of(document["version"]).empty());
    std::map<std::string, const rapidjson::Value*> services;
    for (const auto& service : document["services"].GetArray()) services[string_of(service["name"])] = &service;
    REQUIRE(services.count("math.add") == 1);
    CHECK(string_of((*services["math.add"])["kind"]) == "rpc");
    CHECK(string_of((*services["math.add"])["plugin"]) == "math");
    CHECK(string_of((*services["math.add"])["state"]) == "serving");
    REQUIRE(services.count("test.record") == 1);
    CHECK(string_of((*services["test.record"])["kind"]) == "message");
  }
  SECTION("with the version a plugin declares, else sbusd's") {
    sbus_test::SbusdOptions options;
    options.services_yaml = "  - name: math.add\n    plugin: math\n  - name: c.echo\n    plugin: c_example\n";
    sbus_test::SbusdProcess versioned(options);
    const ProcessResult run = json_cli(versioned, {"services", versioned.node()});
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    const rapidjson::Document document = json_of(run.out);
    std::map<std::string, std::string> versions;
    for (const auto& service : document["services"].GetArray()) {
      versions[string_of(service["name"])] = string_of(service["version"]);
    }
    CHECK(versions["c.echo"] == "1.0");  // plugins/c_example's descriptor
    CHECK(versions["math.add"] == SBUS_VERSION);
  }
  SECTION("of a node nobody serves: unroutable") {
    const ProcessResult run = json_cli(sbusd, {"services", sbus_test::unique_node()});
    CHECK(run.exit_code == 1);
    CHECK(string_of(error_of(run)["error"]["code"]) == "unroutable");
  }
}
