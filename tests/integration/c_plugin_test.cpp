// Plugins on the C ABI alone (sbus/plugin.h) served through a real broker:
// the examples plugins/c_example (C11), rust_example and go_example, and
// tests/abi/v5's plugin, built against the frozen first header of ABI 5,
// which every later sbusd must keep loading.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using sbus_test::TempDir;

// The example plugins, one per language, each with an rpc service `echo`
// and a message service `record` (plugins/*_example): the same check for each.
struct Example {
  const char* language;
  const char* category;  // and the plugin: CATEGORY_example
  const char* params;
  const char* echoed;  // what CATEGORY.echo answers to `params`
  // What CATEGORY.relay, calling CATEGORY.echo through the node's sender,
  // answers to [7]; null for an example without a relay.
  const char* relayed;
};

const Example kExamples[] = {
    // c.echo also counts the calls its service object answered.
    {"C", "c", R"({"a":[1,"x",null]})", R"({"echo":{"a":[1,"x",null]},"calls":1})", R"({"echo":[7],"calls":2})"},
    {"Rust", "rust", R"({"from":"rust"})", R"({"from":"rust"})", nullptr},
    // Go's runtime is not instrumented: the TSan run (scripts/test) picks
    // its tests by name and leaves this one out.
    {"Go", "go", R"({"from":"go"})", R"({"from":"go"})", nullptr},
};

TEST_CASE("the example plugins in C, Rust and Go answer calls, call through the node's sender and take messages",
          "[c-abi][rust][go]") {
  for (const Example& example : kExamples) {
    DYNAMIC_SECTION(example.language) {
      const std::string category = example.category;
      TempDir dir;
      const std::string record = dir.file("record.txt");
      SbusdOptions options;
      options.services_yaml = "  - name: " + category + ".echo\n    plugin: " + category +
                              "_example\n"
                              "  - name: " +
                              category + ".record\n    plugin: " + category +
                              "_example\n"
                              "    kind: message\n"
                              "    options: {file: " +
                              record + "}\n";
      if (example.relayed != nullptr) {
        options.services_yaml += "  - name: " + category + ".relay\n    plugin: " + category +
                                 "_example\n    options: {to: " + category + ".echo}\n";
      }
      SbusdProcess sbusd(options);
      sbus::Sender sender(sbusd.sender_options());

      const sbus::CallResult echo = sender.call(sbusd.address(category + ".echo"), example.params, 10s);
      INFO(echo.error_code << " " << echo.message);
      REQUIRE(echo.ok());
      CHECK(echo.message == example.echoed);
      if (example.relayed != nullptr) {
        const sbus::CallResult relayed = sender.call(sbusd.address(category + ".relay"), "[7]", 10s);
        INFO(relayed.error_code << " " << relayed.message);
        REQUIRE(relayed.ok());
        CHECK(relayed.message == example.relayed);
      }

      const std::string written = "[\"written by " + std::string(example.language) + "\"]";
      sender.send(sbusd.address(category + ".record"), written);
      CHECK(sbus_test::wait_until([&] { return sbus_test::read_file(record) == written + "\n"; }, 10s));
      const std::string logged = category + ".record: recorded " + std::to_string(written.size()) + " bytes";
      CHECK(sbus_test::wait_until([&] { return sbusd.log().find(logged) != std::string::npos; }, 5s));
    }
  }
}

TEST_CASE("a plugin built against the frozen ABI 5.0 header keeps loading and serving", "[c-abi][compat]") {
  SbusdOptions options;
  options.plugin_dir = SBUS_BUILD_DIR "/test-plugins";
  options.services_yaml =
      "  - name: frozen.echo\n"
      "    plugin: abi_v5_plugin\n"
      "    export: echo\n";
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());
  const sbus::CallResult echo = sender.call(sbusd.address("frozen.echo"), R"({"v":5})", 10s);
  REQUIRE(echo.ok());
  CHECK(echo.message == R"({"v":5})");
}
