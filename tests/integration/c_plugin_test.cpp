// Plugins on the C ABI alone (sbus/plugin.h) served through a real broker:
// plugins/c_example (C11), and tests/abi/v5's plugin, built against the
// frozen first header of ABI 5, which every later sbusd must keep loading.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using sbus_test::TempDir;

TEST_CASE("a C plugin answers calls, calls through the node's sender and takes messages", "[c-abi]") {
  TempDir dir;
  const std::string record = dir.file("record.txt");
  SbusdOptions options;
  options.services_yaml =
      "  - name: c.echo\n"
      "    plugin: c_example\n"
      "  - name: c.relay\n"
      "    plugin: c_example\n"
      "    options: {to: c.echo}\n"
      "  - name: c.record\n"
      "    plugin: c_example\n"
      "    kind: message\n"
      "    options: {file: " +
      record + "}\n";
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());

  const sbus::CallResult echo = sender.call(sbusd.address("c.echo"), R"({"a":[1,"x",null]})", 10s);
  REQUIRE(echo.ok());
  CHECK(echo.message == R"({"echo":{"a":[1,"x",null]},"calls":1})");

  // c.relay calls c.echo through the host's sender and answers its reply.
  const sbus::CallResult relayed = sender.call(sbusd.address("c.relay"), "[7]", 10s);
  INFO(relayed.message);
  REQUIRE(relayed.ok());
  CHECK(relayed.message == R"({"echo":[7],"calls":2})");

  sender.send(sbusd.address("c.record"), R"(["written by C"])");
  CHECK(sbus_test::wait_until([&] { return sbus_test::read_file(record) == "[\"written by C\"]\n"; }, 10s));
  CHECK(
      sbus_test::wait_until([&] { return sbusd.log().find("c.record: recorded 16 bytes") != std::string::npos; }, 5s));
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

TEST_CASE("a Rust plugin on the C ABI answers calls and takes messages", "[c-abi][rust]") {
  TempDir dir;
  const std::string record = dir.file("record.txt");
  SbusdOptions options;
  options.services_yaml =
      "  - name: rust.echo\n"
      "    plugin: rust_example\n"
      "  - name: rust.record\n"
      "    plugin: rust_example\n"
      "    kind: message\n"
      "    options: {file: " +
      record + "}\n";
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());

  const sbus::CallResult echo = sender.call(sbusd.address("rust.echo"), R"({"from":"rust"})", 10s);
  REQUIRE(echo.ok());
  CHECK(echo.message == R"({"from":"rust"})");

  sender.send(sbusd.address("rust.record"), R"(["written by Rust"])");
  CHECK(sbus_test::wait_until([&] { return sbus_test::read_file(record) == "[\"written by Rust\"]\n"; }, 10s));
  CHECK(sbus_test::wait_until([&] { return sbusd.log().find("rust.record: recorded 19 bytes") != std::string::npos; },
                              5s));
}

// Kept out of the TSan run (scripts/test picks its tests by name): the Go
// runtime is not instrumented.
TEST_CASE("a Go plugin on the C ABI answers calls and takes messages", "[c-abi][go]") {
  TempDir dir;
  const std::string record = dir.file("record.txt");
  SbusdOptions options;
  options.services_yaml =
      "  - name: go.echo\n"
      "    plugin: go_example\n"
      "  - name: go.record\n"
      "    plugin: go_example\n"
      "    kind: message\n"
      "    options: {file: " +
      record + "}\n";
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());

  const sbus::CallResult echo = sender.call(sbusd.address("go.echo"), R"({"from":"go"})", 10s);
  REQUIRE(echo.ok());
  CHECK(echo.message == R"({"from":"go"})");

  sender.send(sbusd.address("go.record"), R"(["written by Go"])");
  CHECK(sbus_test::wait_until([&] { return sbus_test::read_file(record) == "[\"written by Go\"]\n"; }, 10s));
  CHECK(
      sbus_test::wait_until([&] { return sbusd.log().find("go.record: recorded 17 bytes") != std::string::npos; }, 5s));
}
