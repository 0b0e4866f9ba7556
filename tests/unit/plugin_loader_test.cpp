// The plugin loader, driven with the real plugins of the build (math.so,
// test.so) and with the broken ones of tests/plugins/.
#include "worker/plugin_loader.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "config/config.hpp"
#include "worker/params.hpp"
#include "worker/plugin_host.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

const std::string kBuildDir = SBUS_BUILD_DIR;
const std::string kMathPlugin = kBuildDir + "/plugins/math.so";
const std::string kTestPlugin = kBuildDir + "/plugins/test.so";
const std::string kBadAbiPlugin = kBuildDir + "/test-plugins/bad_abi_plugin.so";
const std::string kNoSymbolPlugin = kBuildDir + "/test-plugins/no_symbol_plugin.so";
const std::string kDuplicateMathPlugin = kBuildDir + "/test-plugins/duplicate_math_plugin.so";
const std::string kUnknownKindPlugin = kBuildDir + "/test-plugins/unknown_kind_plugin.so";
const std::string kCallOnlyEchoPlugin = kBuildDir + "/test-plugins/call_only_echo_plugin.so";

// What a call through the C ABI answered, read as the SDK's Response.
struct Reply {
  std::optional<std::string> failure;  // the entry point failed (a C++ exception)
  std::string code;
  std::string text;
  bool is_error() const { return failure.has_value() || !code.empty(); }
  const std::string& error_code() const { return code; }
  const std::string& body() const { return text; }
};

// Hands `params_json` to the service as sbusd does: a call, or a message.
sbus_request make_request(const std::string& category, const std::string& service, const char* params_json,
                          bool is_call) {
  std::string error;
  REQUIRE(sbus::check_params(params_json, &error));
  sbus_request request;
  request.id = "event-1";
  request.node = "node-1";
  request.category = category;
  request.service = service;
  request.params = params_json;
  request.is_call = is_call;
  return request;
}

Reply call(sbus::LoadedService& loaded, const std::string& category, const std::string& service,
           const char* params_json) {
  sbus_request request = make_request(category, service, params_json, true);
  Reply reply;
  reply.failure = loaded.call(request);
  reply.code = request.error_code;
  reply.text = request.body;
  return reply;
}

std::optional<std::string> deliver(sbus::LoadedService& loaded, const std::string& category, const std::string& service,
                                   const char* params_json) {
  sbus_request request = make_request(category, service, params_json, false);
  return loaded.deliver(request, false);
}

// The message of the PluginError that `action` throws ("" if none).
template <typename Action>
std::string plugin_error(Action action) {
  try {
    action();
  } catch (const sbus::PluginError& e) {
    return e.what();
  }
  FAIL("no PluginError was thrown");
  return "";
}

}  // namespace

TEST_CASE("the built plugins exist where the loader tests look for them", "[plugin_loader]") {
  for (const std::string& path : {kMathPlugin, kTestPlugin, kBadAbiPlugin, kNoSymbolPlugin, kDuplicateMathPlugin,
                                  kUnknownKindPlugin, kCallOnlyEchoPlugin}) {
    INFO(path);
    CHECK(std::filesystem::exists(path));
  }
}

TEST_CASE("math.add loaded through the loader sums its params", "[plugin_loader]") {
  sbus::PluginLoader loader;
  sbus::LoadedService add = loader.create(kMathPlugin, "add", sbus::Kind::kCall);

  SECTION("integers") {
    const Reply response = call(add, "math", "add", "[1, 2]");
    CHECK_FALSE(response.is_error());
    CHECK(response.body() == "3");
  }
  SECTION("params that are not a list give invalid_params") {
    const Reply response = call(add, "math", "add", R"({"a": 1})");
    CHECK(response.is_error());
    CHECK(response.error_code() == "invalid_params");
  }
}

TEST_CASE("the descriptor of test.so lists its name and services", "[plugin_loader]") {
  sbus::PluginLoader loader;
  const sbus::PluginDescriptor& d = loader.descriptor(kTestPlugin);
  CHECK(d.abi_major == sbus::kAbiVersion);
  CHECK(d.abi_minor == SBUS_ABI_MINOR);
  CHECK(std::string(d.name) == "test");
  std::vector<std::string> names;
  for (std::size_t i = 0; i < d.service_count; ++i) names.emplace_back(sbus::service_def(d, i).name);
  // The services plugins/test/test_plugin.cpp documents (it may grow).
  for (const char* name : {"echo", "sleep", "fail", "record", "relay"}) {
    CHECK_THAT(names, Catch::Matchers::VectorContains(std::string(name)));
  }
}

TEST_CASE("test.echo answers its params unchanged", "[plugin_loader]") {
  sbus::PluginLoader loader;
  sbus::LoadedService echo = loader.create(kTestPlugin, "echo", sbus::Kind::kCall);
  const Reply response = call(echo, "test", "echo", R"({"a":[1,"x",null]})");
  CHECK_FALSE(response.is_error());
  CHECK(response.body() == R"({"a":[1,"x",null]})");
}

TEST_CASE("test.echo answers long params with escapes unchanged, through the SDK's parse in place", "[plugin_loader]") {
  sbus::PluginLoader loader;
  sbus::LoadedService echo = loader.create(kTestPlugin, "echo", sbus::Kind::kCall);
  const std::string params = "[\"" + std::string(200000, 'x') + "\",\"q\\\"b\\\\n\\u0000\",{\"k\":[true]}]";
  const Reply response = call(echo, "test", "echo", params.c_str());
  CHECK_FALSE(response.is_error());
  CHECK(response.body() == params);
}

TEST_CASE("a loaded service outlives the loader that created it", "[plugin_loader]") {
  std::vector<sbus::LoadedService> services;
  {
    sbus::PluginLoader loader;
    services.push_back(loader.create(kMathPlugin, "add", sbus::Kind::kCall));
    services.push_back(loader.create(kMathPlugin, "add", sbus::Kind::kCall));
  }
  // The library stays mapped as long as a service of it lives.
  for (sbus::LoadedService& service : services) {
    const Reply response = call(service, "math", "add", "[40, 2]");
    CHECK(response.body() == "42");
  }
  services.erase(services.begin());
  const Reply response = call(services.front(), "math", "add", "[1, 1]");
  CHECK(response.body() == "2");
}

TEST_CASE("the loader refuses a plugin it cannot use, naming the file and the cause", "[plugin_loader]") {
  sbus::PluginLoader loader;

  SECTION("a file that does not exist") {
    const std::string path = kBuildDir + "/plugins/nonexistent.so";
    const std::string error = plugin_error([&] { loader.descriptor(path); });
    CHECK_THAT(error, Contains(path));
    CHECK_THAT(error, Contains("no such file"));
  }
  SECTION("a file that is not a shared object") {
    const std::string path = std::string(SBUS_SOURCE_DIR) + "/tests/CMakeLists.txt";
    const std::string error = plugin_error([&] { loader.descriptor(path); });
    CHECK_THAT(error, Contains(path));
    CHECK_THAT(error, Contains("cannot load"));
  }
  SECTION("a shared object without the descriptor symbol") {
    const std::string error = plugin_error([&] { loader.create(kNoSymbolPlugin, "add", sbus::Kind::kCall); });
    CHECK_THAT(error, Contains(kNoSymbolPlugin));
    CHECK_THAT(error, Contains("no symbol sbus_plugin_descriptor"));
  }
  SECTION("a plugin built for another ABI, whose descriptor is never read past the version") {
    const std::string error = plugin_error([&] { loader.create(kBadAbiPlugin, "add", sbus::Kind::kCall); });
    CHECK_THAT(error, Contains(kBadAbiPlugin));
    CHECK_THAT(error, Contains("ABI 999"));
    CHECK_THAT(error, Contains("ABI " + std::to_string(sbus::kAbiVersion)));
    // Refused again, not cached as loaded.
    CHECK_THAT(plugin_error([&] { loader.descriptor(kBadAbiPlugin); }), Contains("ABI 999"));
  }
  SECTION("a service the plugin does not have, listing the ones it has") {
    const std::string error = plugin_error([&] { loader.create(kMathPlugin, "subtract", sbus::Kind::kCall); });
    CHECK_THAT(error, Contains(kMathPlugin));
    CHECK_THAT(error, Contains("no service 'subtract'"));
    CHECK_THAT(error, Contains("(it has: add)"));
    const sbus::PluginDescriptor& test = loader.descriptor(kTestPlugin);
    std::string all_services;
    for (std::size_t i = 0; i < test.service_count; ++i) {
      all_services += (i == 0 ? "" : ", ") + std::string(sbus::service_def(test, i).name);
    }
    REQUIRE_THAT(all_services, StartsWith("echo, sleep, fail"));
    const std::string test_error = plugin_error([&] { loader.create(kTestPlugin, "nope", sbus::Kind::kCall); });
    CHECK_THAT(test_error, Contains("(it has: " + all_services + ")"));
  }
}

TEST_CASE("the loader refuses two different files with the same plugin name", "[plugin_loader]") {
  sbus::PluginLoader loader;
  SECTION("math.so first") {
    loader.descriptor(kMathPlugin);
    const std::string error = plugin_error([&] { loader.create(kDuplicateMathPlugin, "add", sbus::Kind::kCall); });
    CHECK_THAT(error, Contains(kDuplicateMathPlugin));
    CHECK_THAT(error, Contains("'math'"));
    CHECK_THAT(error, Contains(kMathPlugin));
    // The first one still works.
    sbus::LoadedService add = loader.create(kMathPlugin, "add", sbus::Kind::kCall);
    const Reply response = call(add, "math", "add", "[2, 3]");
    CHECK(response.body() == "5");
  }
  SECTION("the other one first") {
    sbus::LoadedService other = loader.create(kDuplicateMathPlugin, "add", sbus::Kind::kCall);
    const Reply response = call(other, "math", "add", "[2, 3]");
    CHECK(response.body() == "\"the other math.add\"");
    const std::string error = plugin_error([&] { loader.descriptor(kMathPlugin); });
    CHECK_THAT(error, Contains("'math'"));
    CHECK_THAT(error, Contains(kDuplicateMathPlugin));
  }
  SECTION("the same file twice is one plugin") {
    const sbus::PluginDescriptor& first = loader.descriptor(kMathPlugin);
    const sbus::PluginDescriptor& second = loader.descriptor(kMathPlugin);
    CHECK(&first == &second);
  }
}

TEST_CASE("check_plugins reports FILE:LINE of each service entry whose plugin fails", "[plugin_loader]") {
  const std::string yaml =
      "brokers: [amqp://127.0.0.1/]\n"
      "secret: a sixteen byte secret\n"
      "plugin_dir: " +
      kBuildDir +
      "/plugins\n"
      "services:\n"
      "  - name: math.add\n"  // 5
      "    plugin: math\n"
      "  - name: math.sub\n"  // 7
      "    plugin: math\n"
      "  - name: test.echo\n"  // 9
      "    plugin: test\n"
      "  - name: other.add\n"  // 11
      "    plugin: " +
      kDuplicateMathPlugin +
      "\n"
      "    export: add\n"
      "  - name: ghost.add\n"  // 14
      "    plugin: ghost\n"
      "  - name: bad.add\n"  // 16
      "    plugin: " +
      kBadAbiPlugin +
      "\n"
      "    export: add\n";
  const std::string path = "/srv/sbus/sbusd.yaml";
  sbus::Config config;
  std::vector<std::string> problems;
  REQUIRE(sbus::load_config_text(yaml, path, {}, &config, &problems));
  REQUIRE(config.services.size() == 6);

  sbus::check_plugins(config, &problems);
  std::string all;
  for (const std::string& problem : problems) all += problem + "\n";
  INFO(all);
  REQUIRE(problems.size() == 4);
  CHECK_THAT(problems[0], StartsWith(path + ":7: services[1].plugin: "));
  CHECK_THAT(problems[0], Contains("no service 'sub'"));
  CHECK_THAT(problems[1], StartsWith(path + ":11: services[3].plugin: "));
  CHECK_THAT(problems[1], Contains("'math'"));
  CHECK_THAT(problems[2], StartsWith(path + ":14: services[4].plugin: "));
  CHECK_THAT(problems[2], Contains("no such file"));
  CHECK_THAT(problems[3], StartsWith(path + ":16: services[5].plugin: "));
  CHECK_THAT(problems[3], Contains("ABI 999"));
}

TEST_CASE("check_plugins finds nothing wrong with the plugins of a good config", "[plugin_loader]") {
  const std::string yaml =
      "brokers: [amqp://127.0.0.1/]\n"
      "secret: a sixteen byte secret\n"
      "plugin_dir: " +
      kBuildDir +
      "/plugins\n"
      "services:\n"
      "  - name: math.add\n"
      "    plugin: math\n"
      "  - name: test.echo\n"
      "    plugin: test\n"
      "  - name: test.log\n"
      "    plugin: test\n"
      "    kind: message\n"
      "    export: record\n";
  sbus::Config config;
  std::vector<std::string> problems;
  REQUIRE(sbus::load_config_text(yaml, "/srv/sbus/sbusd.yaml", {}, &config, &problems));
  sbus::check_plugins(config, &problems);
  CHECK(problems.empty());
}

TEST_CASE("each service of test.so declares the kinds it serves", "[plugin_loader][kinds]") {
  sbus::PluginLoader loader;
  CHECK(static_cast<sbus::Kind>(loader.find(kTestPlugin, "sleep").kinds) == sbus::Kind::kCall);
  CHECK(static_cast<sbus::Kind>(loader.find(kTestPlugin, "fail_message").kinds) == sbus::Kind::kMessage);
  // A sink for messages too, and a recorder that also answers calls.
  CHECK(static_cast<sbus::Kind>(loader.find(kTestPlugin, "echo").kinds) == (sbus::Kind::kCall | sbus::Kind::kMessage));
  // ... and an event service too (kind: event).
  CHECK(static_cast<sbus::Kind>(loader.find(kTestPlugin, "record").kinds) ==
        (sbus::Kind::kCall | sbus::Kind::kMessage | sbus::Kind::kEvent));
  CHECK(static_cast<sbus::Kind>(loader.find(kTestPlugin, "fail_event").kinds) == sbus::Kind::kEvent);
  CHECK(sbus::kinds_text(sbus::Kind::kEvent) == "event");
  CHECK(sbus::kinds_text(sbus::Kind::kCall | sbus::Kind::kMessage | sbus::Kind::kEvent) == "rpc and message and event");
  CHECK(static_cast<sbus::Kind>(loader.find(kMathPlugin, "add").kinds) == sbus::Kind::kCall);
  CHECK(sbus::kinds_text(sbus::Kind::kCall) == "rpc");
  CHECK(sbus::kinds_text(sbus::Kind::kMessage) == "message");
  CHECK(sbus::kinds_text(sbus::Kind::kCall | sbus::Kind::kMessage) == "rpc and message");
  CHECK(sbus::sdk_kind(sbus::ServiceKind::kRpc) == sbus::Kind::kCall);
  CHECK(sbus::sdk_kind(sbus::ServiceKind::kMessage) == sbus::Kind::kMessage);
}

TEST_CASE("the loader creates a service only for a kind it serves, and says which it serves otherwise",
          "[plugin_loader][kinds]") {
  sbus::PluginLoader loader;

  SECTION("an RPC-only service asked for messages") {
    const std::string error = plugin_error([&] { loader.create(kMathPlugin, "add", sbus::Kind::kMessage); });
    CHECK(error == "plugin " + kMathPlugin + ": service 'add' serves rpc only, not kind: message");
  }
  SECTION("a message-only service asked for calls") {
    const std::string error = plugin_error([&] { loader.create(kTestPlugin, "fail_message", sbus::Kind::kCall); });
    CHECK(error == "plugin " + kTestPlugin + ": service 'fail_message' serves message only, not kind: rpc");
  }
  SECTION("a service that serves both, for either") {
    sbus::LoadedService as_call = loader.create(kTestPlugin, "echo", sbus::Kind::kCall);
    sbus::LoadedService as_message = loader.create(kTestPlugin, "echo", sbus::Kind::kMessage);
    const Reply response = call(as_call, "test", "echo", "[7]");
    CHECK(response.body() == "[7]");
    // A sink: takes the message and does nothing with it.
    CHECK_FALSE(deliver(as_message, "sink", "echo", "[7]").has_value());
  }
}

TEST_CASE("the loader refuses a service that declares a kind this sbusd does not know", "[plugin_loader][kinds]") {
  sbus::PluginLoader loader;
  const std::string error = plugin_error([&] { loader.descriptor(kUnknownKindPlugin); });
  CHECK_THAT(error, StartsWith("plugin " + kUnknownKindPlugin + ": service 'future'"));
  CHECK_THAT(error, Contains("kinds this sbusd does not know (0x80)"));
  // Nothing of it is created, not even for the kind it does declare.
  CHECK_THAT(plugin_error([&] { loader.create(kUnknownKindPlugin, "future", sbus::Kind::kCall); }), Contains("0x80"));
}

TEST_CASE("a service that does not override on_message refuses a message instead of dropping it",
          "[plugin_loader][kinds]") {
  // Only a descriptor made without SBUS_SERVICE can reach this: the default
  // throws, so the message is retried and then kept in the error queue.
  sbus::PluginLoader loader;
  sbus::LoadedService add = loader.create(kMathPlugin, "add", sbus::Kind::kCall);
  const std::optional<std::string> failure = deliver(add, "math", "add", "[1, 2]");
  REQUIRE(failure.has_value());
  CHECK(*failure == "service math.add does not take messages");
}

TEST_CASE("check_plugins reports FILE:LINE of each service entry whose kind its service does not serve",
          "[plugin_loader][kinds]") {
  const std::string yaml =
      "brokers: [amqp://127.0.0.1/]\n"
      "secret: a sixteen byte secret\n"
      "plugin_dir: " +
      kBuildDir +
      "/plugins\n"
      "services:\n"
      "  - name: math.add\n"  // 5: rpc only
      "    plugin: math\n"
      "    kind: message\n"
      "  - name: test.echo\n"  // 8: both
      "    plugin: test\n"
      "    kind: message\n"
      "  - name: test.record\n"  // 11: both
      "    plugin: test\n"
      "  - name: test.fail_message\n"  // 13: messages only
      "    plugin: test\n"
      "  - name: old.echo\n"  // 15: rpc only
      "    plugin: " +
      kCallOnlyEchoPlugin +
      "\n"
      "    export: echo\n"
      "    kind: message\n";
  const std::string path = "/srv/sbus/sbusd.yaml";
  sbus::Config config;
  std::vector<std::string> problems;
  REQUIRE(sbus::load_config_text(yaml, path, {}, &config, &problems));
  REQUIRE(config.services.size() == 5);

  sbus::check_plugins(config, &problems);
  std::string all;
  for (const std::string& problem : problems) all += problem + "\n";
  INFO(all);
  REQUIRE(problems.size() == 3);
  CHECK(problems[0] == path + ":5: services[0].kind: message, but service 'add' of plugin " + kMathPlugin +
                           " serves rpc only (its SBUS_SERVICE says what it serves)");
  CHECK(problems[1] == path + ":13: services[3].kind: rpc, but service 'fail_message' of plugin " + kTestPlugin +
                           " serves message only (its SBUS_SERVICE says what it serves)");
  CHECK_THAT(problems[2], StartsWith(path + ":15: services[4].kind: message, but service 'echo' of plugin " +
                                     kCallOnlyEchoPlugin + " serves rpc only"));
}

TEST_CASE("a ServiceContext gives the sender settings it was made with, not a struct of its own layout",
          "[plugin_loader][context]") {
  sbus::SenderOptions sender;
  sender.brokers = {"amqp://a/", "amqp://b/"};
  sender.secret = "the secret";
  sender.token = "hmac-sha256-v2";
  const sbus::ServiceContext context{"node-1", "shop", "price", {{"apple", "0.5"}}, sender};
  CHECK(context.node == "node-1");
  CHECK(context.options.at("apple") == "0.5");
  const sbus::SenderOptions copy = context.sender_options();
  CHECK(copy.brokers == sender.brokers);
  CHECK(copy.secret == "the secret");
  CHECK(copy.token == "hmac-sha256-v2");
  // Copies share the settings; a default-made context has no brokers.
  const sbus::ServiceContext moved = context;
  CHECK(moved.sender_options().secret == "the secret");
  CHECK(sbus::ServiceContext{}.sender_options().brokers.empty());
  // Made by a test, not by sbusd: no host behind it (its log goes to stderr).
  CHECK(context.host() == nullptr);
  CHECK(context.handle() == nullptr);
}
