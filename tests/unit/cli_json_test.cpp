// The JSON output layer of `sbus --json` (client/cli/json_value.hpp,
// output.hpp): whatever text goes in, hostile or not UTF-8, what comes out
// is one valid JSON document per line, and errors carry the exit code of
// the one table.
#include <catch2/catch.hpp>

#include <rapidjson/document.h>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.hpp"
#include "client/cli/cli.hpp"
#include "client/cli/exit_code.hpp"
#include "client/cli/json_value.hpp"
#include "client/cli/output.hpp"
#include "client/cli/verb.hpp"

using sbus::cli::ExitCode;
using sbus::cli::JsonObject;
using sbus::cli::Output;

namespace {

using Run = sbus_test::CliRun;
using sbus_test::sbus_cli;

// `line` parsed strictly (valid UTF-8 demanded); fails the test when it is
// not one JSON document.
rapidjson::Document parsed(const std::string& line) {
  rapidjson::Document document;
  document.Parse<rapidjson::kParseValidateEncodingFlag>(line.data(), line.size());
  INFO(line.substr(0, 300));
  REQUIRE_FALSE(document.HasParseError());
  return document;
}

std::string string_of(const rapidjson::Value& value) {
  return std::string(value.GetString(), value.GetStringLength());
}

// Each line of `text`.
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Hostile text: quotes, backslashes, every control character, a NUL,
// and byte sequences that are not UTF-8 (a lone lead byte, a lone
// continuation byte, an overlong slash, 0xFF, a sequence cut at the end).
const std::string kHostile = std::string("\"q\" \\ \\\" </script> \x01\x02\x1f\x7f\t\r\n") + std::string(1, '\0') +
                             "tail \xc3 \x80 \xc0\xaf \xff \xe2\x82";

// The one JSON error line of `err`: {"error": {...}}.
rapidjson::Document error_of(const std::string& err) {
  const std::vector<std::string> lines = lines_of(err);
  INFO(err);
  REQUIRE(lines.size() == 1);
  rapidjson::Document document = parsed(lines[0]);
  REQUIRE(document.IsObject());
  REQUIRE(document.HasMember("error"));
  return document;
}

}  // namespace

TEST_CASE("Text that is not UTF-8 is made valid, byte by bad byte, and valid text is kept", "[cli][json]") {
  CHECK(sbus::cli::valid_utf8("plain") == "plain");
  CHECK(sbus::cli::valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") ==
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  CHECK(sbus::cli::valid_utf8("a\xff"
                              "b") ==
        "a\xef\xbf\xbd"
        "b");
  CHECK(sbus::cli::valid_utf8("\x80") == "\xef\xbf\xbd");
  CHECK(sbus::cli::valid_utf8("\xc0\xaf") == "\xef\xbf\xbd\xef\xbf\xbd");
  CHECK(sbus::cli::valid_utf8("end \xe2\x82") == "end \xef\xbf\xbd\xef\xbf\xbd");
  CHECK(sbus::cli::valid_utf8(std::string("a\0b", 3)) == std::string("a\0b", 3));
}

TEST_CASE("Hostile strings come out as valid JSON that reads back as what went in", "[cli][json]") {
  JsonObject object;
  object.text("hostile", kHostile).text(kHostile, "as a key too");
  const std::string line = object.str();
  CHECK(line.find('\n') == std::string::npos);
  const rapidjson::Document document = parsed(line);
  CHECK(string_of(document["hostile"]) == sbus::cli::valid_utf8(kHostile));
  CHECK(string_of(document["hostile"]).substr(0, 13) == "\"q\" \\ \\\" </sc");
  CHECK(document.HasMember(rapidjson::Value(sbus::cli::valid_utf8(kHostile).c_str(),
                                            static_cast<rapidjson::SizeType>(sbus::cli::valid_utf8(kHostile).size()),
                                            const_cast<rapidjson::Document&>(document).GetAllocator())));

  SECTION("a very long string") {
    std::string long_text;
    for (int i = 0; i < 200000; ++i) long_text += (i % 97 == 0) ? std::string("\"\\\x01\xff") : std::string("x");
    const rapidjson::Document long_document = parsed(JsonObject().text("long", long_text).str());
    CHECK(string_of(long_document["long"]) == sbus::cli::valid_utf8(long_text));
  }
}

TEST_CASE("A service's answer goes in as JSON when it is JSON, else as a string", "[cli][json]") {
  JsonObject object;
  CHECK(object.json("array", "[1, \"two\", {\"three\": null}]"));
  CHECK_FALSE(object.json("text", "plain text, not JSON"));
  // JSON in form, but with a string that is not UTF-8: taken as text.
  CHECK_FALSE(object.json("bad_utf8", "\"\xff\""));
  CHECK_FALSE(object.json("nan", "NaN"));
  CHECK_FALSE(object.json("huge", "1e999"));
  CHECK_FALSE(object.json("two_documents", "{} {}"));
  CHECK(object.json("escaped_nul", "\"a\\u0000b\""));
  object.number("infinite", 1.0 / 0.0);
  const rapidjson::Document document = parsed(object.str());
  CHECK(string_of(document["array"][1]) == "two");
  CHECK(document["text"] == "plain text, not JSON");
  CHECK(string_of(document["bad_utf8"]) == "\"\xef\xbf\xbd\"");
  CHECK(document["nan"] == "NaN");
  CHECK(document["huge"] == "1e999");
  CHECK(string_of(document["escaped_nul"]) == std::string("a\0b", 3));
  CHECK(document["infinite"].IsNull());
  CHECK_FALSE(JsonObject::parse("[1]"));
  CHECK_FALSE(JsonObject::parse("{\"a\": \"\xff\"}"));
  REQUIRE(JsonObject::parse("{\"a\": 1}"));
}

TEST_CASE("An error is one JSON line on stderr with its code, message and exit code from the table", "[cli][json]") {
  std::ostringstream out;
  std::ostringstream err;
  const Output json(true, out, err);
  CHECK(json.fail(ExitCode::kServiceError, kHostile, kHostile, JsonObject().text("node", kHostile)) ==
        ExitCode::kServiceError);
  json.warn(kHostile);
  CHECK(out.str().empty());
  const std::vector<std::string> lines = lines_of(err.str());
  REQUIRE(lines.size() == 2);
  const rapidjson::Document error = parsed(lines[0]);
  CHECK(string_of(error["error"]["message"]) == sbus::cli::valid_utf8(kHostile));
  CHECK(string_of(error["error"]["code"]) == sbus::cli::valid_utf8(kHostile));
  CHECK(string_of(error["error"]["node"]) == sbus::cli::valid_utf8(kHostile));
  CHECK(error["error"]["exit"].GetInt() == 1);
  CHECK(error["error"]["exit_name"] == "service_error");
  CHECK(parsed(lines[1])["warning"]["message"].IsString());

  SECTION("a sender's error: its kind is the code") {
    using Kind = sbus::SenderError::Kind;
    for (const auto& [kind, code, exit] :
         std::vector<std::tuple<Kind, std::string, int>>{{Kind::kUnroutable, "unroutable", 1},
                                                         {Kind::kBlocked, "blocked", 3},
                                                         {Kind::kTimeout, "timeout", 3},
                                                         {Kind::kConnect, "connect", 4},
                                                         {Kind::kConnectionLost, "connection_lost", 4},
                                                         {Kind::kAddress, "address", 2}}) {
      std::ostringstream one;
      Output(true, out, one).fail(sbus::SenderError(kind, "what: " + kHostile), "context");
      const rapidjson::Document sender_error = parsed(lines_of(one.str()).at(0));
      CHECK(string_of(sender_error["error"]["code"]) == code);
      CHECK(sender_error["error"]["exit"].GetInt() == exit);
      CHECK(string_of(sender_error["error"]["message"]).rfind("context: what: ", 0) == 0);
    }
  }
  SECTION("in text, the same error is the line `sbus: MESSAGE`") {
    std::ostringstream text_err;
    Output(false, out, text_err).fail(ExitCode::kUsage, "usage", "no verb halp");
    CHECK(text_err.str() == "sbus: no verb halp\n");
  }
}

TEST_CASE("With --json, usage errors and the help are JSON too", "[cli][json]") {
  SECTION("no such verb") {
    const Run run = sbus_cli({"halp", "--json"});
    CHECK(run.code == ExitCode::kUsage);
    CHECK(run.out.empty());
    const rapidjson::Document error = error_of(run.err);
    CHECK(error["error"]["code"] == "usage");
    CHECK(error["error"]["message"] == "no verb halp");
    CHECK(error["error"]["exit"].GetInt() == 2);
  }
  SECTION("an unknown option, and no broker") {
    for (const std::vector<std::string>& args : {std::vector<std::string>{"ping", "A", "--bogus", "--json"},
                                                 {"ping", "A", "--json"},
                                                 {"--json"},
                                                 {"call", "A.b.c", "[", "--json", "--broker", "amqp://127.0.0.1:1/"}}) {
      const Run run = sbus_cli(args);
      CHECK(run.code == ExitCode::kUsage);
      CHECK(run.out.empty());
      CHECK(error_of(run.err)["error"]["exit_name"] == "usage");
    }
  }
  SECTION("--wait and --ping belong to discover") {
    const Run run = sbus_cli({"ping", "A", "--json", "--broker", "amqp://127.0.0.1:1/", "--wait", "5"});
    CHECK(run.code == ExitCode::kUsage);
    CHECK(error_of(run.err)["error"]["message"] == "--wait and --ping are for discover only");
  }
  SECTION("completion: bash only") {
    const Run run = sbus_cli({"completion", "zsh", "--json"});
    CHECK(run.code == ExitCode::kUsage);
    CHECK(error_of(run.err)["error"]["message"] == "completion: only bash, not zsh");
    const Run bash = sbus_cli({"completion", "bash", "--json"});
    CHECK(bash.code == ExitCode::kOk);
    CHECK(string_of(parsed(bash.out)["script"]).find("complete -F _sbus sbus") != std::string::npos);
  }
  SECTION("a broker that refuses: unreachable") {
    const Run run = sbus_cli({"ping", "A", "--json", "--broker", "amqp://127.0.0.1:1/", "--timeout", "2"});
    CHECK(run.code == ExitCode::kUnreachable);
    CHECK(error_of(run.err)["error"]["code"] == "connect");
  }
  SECTION("the help lists the verbs of the table, the options and the exit codes") {
    const Run run = sbus_cli({"help", "--json"});
    CHECK(run.code == ExitCode::kOk);
    const rapidjson::Document help = parsed(run.out);
    REQUIRE(help["verbs"].Size() == sbus::cli::verbs().size());
    for (rapidjson::SizeType i = 0; i < help["verbs"].Size(); ++i) {
      CHECK(string_of(help["verbs"][i]["name"]) == sbus::cli::verbs()[i].name);
    }
    CHECK(help["exit_codes"].Size() == sbus::cli::exit_codes().size());
    bool has_json = false;
    for (const auto& option : help["options"].GetArray()) has_json = has_json || option["name"] == "--json";
    CHECK(has_json);
  }
  SECTION("the version") {
    CHECK(parsed(sbus_cli({"--version", "--json"}).out)["version"].IsString());
  }
}
