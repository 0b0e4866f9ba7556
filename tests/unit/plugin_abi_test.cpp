// The C ABI of sbus/plugin.h at the loader: malformed descriptors refused
// with their reason (tests/plugins/bad_descriptor_plugin.c), and services
// that break the rules given the outcome sbus/plugin.h defines
// (tests/plugins/misbehaving_plugin.c). CI runs these under ASan.
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "config/config.hpp"
#include "worker/plugin_host.hpp"
#include "worker/plugin_loader.hpp"

using Catch::Matchers::Contains;

namespace {

const std::string kPluginDir = std::string(SBUS_BUILD_DIR) + "/test-plugins/";
const std::string kMisbehaving = kPluginDir + "misbehaving_plugin.so";

std::string refusal(const std::string& plugin) {
  sbus::PluginLoader loader;
  try {
    loader.descriptor(kPluginDir + plugin);
  } catch (const sbus::PluginError& e) {
    return e.what();
  }
  FAIL("plugin " + plugin + " was loaded");
  return "";
}

struct Answer {
  std::optional<std::string> failure;
  std::string error_code;
  std::string body;
};

Answer call(sbus::LoadedService& service, const std::string& name, const char* params_json = "[]") {
  const std::string category = "misbehave";
  sbus_request request;
  request.id = "event-1";
  request.node = "node-1";
  request.category = category;
  request.service = name;
  request.params = params_json;
  request.is_call = true;
  Answer answer;
  answer.failure = service.call(request);
  answer.error_code = request.error_code;
  answer.body = request.body;
  return answer;
}

}  // namespace

TEST_CASE("the loader refuses a malformed C descriptor with its reason and never crashes", "[plugin_abi]") {
  SECTION("an ABI from a future major version, read no further than its version") {
    const std::string error = refusal("bad_abi_plugin.so");
    CHECK_THAT(error, Contains("built for sbus plugin ABI 999, newer than this sbusd's ABI 5"));
    CHECK_THAT(error, Contains("upgrade sbusd"));
  }
  SECTION("a minor version newer than this sbusd's") {
    CHECK_THAT(refusal("bad_minor_plugin.so"),
               Contains("built for sbus plugin ABI 5.1, newer than this sbusd's ABI 5.0"));
  }
  SECTION("a descriptor smaller than its version implies") {
    CHECK_THAT(refusal("small_descriptor_plugin.so"),
               Contains("its descriptor is 16 bytes, smaller than ABI 5.0 implies (48)"));
  }
  SECTION("service records smaller than the version implies") {
    CHECK_THAT(refusal("small_service_plugin.so"),
               Contains("its service records are 8 bytes, smaller than ABI 5.0 implies"));
  }
  SECTION("a null plugin name") {
    CHECK_THAT(refusal("null_name_plugin.so"), Contains("its descriptor has no plugin name"));
  }
  SECTION("zero services") {
    CHECK_THAT(refusal("no_services_plugin.so"), Contains("its descriptor lists no services"));
  }
  SECTION("a null service name") {
    CHECK_THAT(refusal("null_service_name_plugin.so"), Contains("service #1 of its descriptor has no name"));
  }
  SECTION("a kind this sbusd does not know") {
    CHECK_THAT(refusal("unknown_kind_plugin.so"),
               Contains("service 'future' declares kinds this sbusd does not know (0x80)"));
  }
  SECTION("a kind without its entry point") {
    CHECK_THAT(refusal("no_on_call_plugin.so"), Contains("service 'future' serves rpc but has no on_call"));
  }
  SECTION("no create function") {
    CHECK_THAT(refusal("no_create_plugin.so"), Contains("service 'future' has no create function"));
  }
  SECTION("a null descriptor") {
    CHECK_THAT(refusal("null_descriptor_plugin.so"), Contains("descriptor is null"));
  }
}

TEST_CASE("sbusd --check's plugin check names the reason of a malformed descriptor", "[plugin_abi]") {
  sbus::Config config;
  config.path = "/etc/sbus/sbusd.yaml";
  sbus::ServiceConfig service;
  service.name = "bad.future";
  service.category = "bad";
  service.service = "future";
  service.export_name = "future";
  service.plugin_path = kPluginDir + "small_service_plugin.so";
  service.line = 7;
  config.services.push_back(service);
  std::vector<std::string> problems;
  sbus::check_plugins(config, &problems);
  REQUIRE(problems.size() == 1);
  CHECK_THAT(problems[0], Contains("/etc/sbus/sbusd.yaml:7: services[0].plugin: plugin " + service.plugin_path +
                                   ": its service records are 8 bytes"));
}

TEST_CASE("a service that breaks the ABI's rules gets the outcome sbus/plugin.h defines", "[plugin_abi]") {
  sbus::PluginLoader loader;
  const sbus::HostContext context{"node-1", "misbehave", "any", {}, sbus::SenderOptions{}};

  SECTION("a second reply is refused and the first one stands") {
    sbus::LoadedService twice = loader.create(kMisbehaving, "twice", sbus::Kind::kCall);
    const Answer answer = call(twice, "twice");
    CHECK_FALSE(answer.failure.has_value());  // it saw SBUS_E_ALREADY_REPLIED
    CHECK(answer.body == "\"first\"");
  }
  SECTION("a call that returns without a reply fails, as an exception would") {
    sbus::LoadedService silent = loader.create(kMisbehaving, "silent", sbus::Kind::kCall);
    const Answer answer = call(silent, "silent");
    REQUIRE(answer.failure.has_value());
    CHECK(*answer.failure == "returned without a reply");
  }
  SECTION("a request, context or sender sbusd did not give is refused, never read") {
    sbus::LoadedService forged = loader.create(kMisbehaving, "forged", sbus::Kind::kCall);
    REQUIRE_FALSE(forged.start(context.get()).has_value());
    const Answer answer = call(forged, "forged");
    REQUIRE_FALSE(answer.failure.has_value());
    // reply_result and sender_close: SBUS_E_INVALID_HANDLE; no options, an
    // empty node and no sender for the forged context.
    CHECK(answer.body == "[-1,-1,0,0,1]");
  }
  SECTION("a null buffer with a size, and a result that is not one JSON value, are refused") {
    sbus::LoadedService bad = loader.create(kMisbehaving, "bad_args", sbus::Kind::kCall);
    const Answer answer = call(bad, "bad_args");
    REQUIRE_FALSE(answer.failure.has_value());
    CHECK(answer.body == "[-2,-5]");
  }
  SECTION("a request kept past its call is invalid afterwards") {
    sbus::LoadedService stale = loader.create(kMisbehaving, "stale", sbus::Kind::kCall);
    REQUIRE_FALSE(stale.start(context.get()).has_value());
    CHECK(call(stale, "stale").body == "\"kept\"");
    const std::optional<std::string> stopped = stale.stop();
    REQUIRE(stopped.has_value());
    CHECK(*stopped == "stale reply: -1");
  }
  SECTION("a reply to a message is refused: nobody waits for it") {
    sbus::LoadedService message = loader.create(kMisbehaving, "reply_msg", sbus::Kind::kMessage);
    sbus_request request;
    request.params = "[]";
    const std::optional<std::string> failure = message.deliver(request, false);
    REQUIRE(failure.has_value());
    CHECK(*failure == "reply to a message: -4");
  }
}
