// The kinds a plugin's services serve (sbus::Kind in sbus/plugin.hpp)
// against the `kind:` of their config entries: a message never reaches a
// service that does not serve messages, neither through a config that
// sbusd accepted nor through a plugin that changed under a running sbusd.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using sbus_test::TempDir;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

const std::string kPlugins = SBUS_BUILD_DIR "/plugins";

}  // namespace

TEST_CASE("sbusd --check names each service entry whose kind its plugin does not serve, and sbusd does not start",
          "[plugin-kinds][check]") {
  TempDir dir;
  const std::string config = dir.file("sbusd.yaml");
  sbus_test::write_file(config,
                        "node: " + sbus_test::unique_node() +
                            "\n"          // 1
                            "brokers:\n"  // 2
                            "  - " +
                            sbus_test::broker_uri() +
                            "\n"  // 3
                            "secret_file: " +
                            sbus_test::write_secret(dir.path()) +
                            "\n"  // 4
                            "state_dir: " +
                            dir.file("state") +
                            "\n"  // 5
                            "plugin_dir: " +
                            kPlugins +
                            "\n"                    // 6
                            "services:\n"           // 7
                            "  - name: math.add\n"  // 8: rpc only
                            "    plugin: math\n"
                            "    kind: message\n"
                            "  - name: test.echo\n"  // 11: serves both
                            "    plugin: test\n"
                            "    kind: message\n"
                            "  - name: test.fail_message\n"  // 14: messages only
                            "    plugin: test\n");

  const auto check = sbus_test::run_program(SBUS_BUILD_DIR "/bin/sbusd", {"--config", config, "--check"});
  INFO("stderr:\n" << check.err);
  CHECK(check.exit_code == 1);
  CHECK(contains(check.err, config + ":8: services[0].kind: message, but service 'add' of plugin " + kPlugins +
                                "/math.so serves rpc only"));
  CHECK(contains(check.err, config + ":14: services[2].kind: rpc, but service 'fail_message' of plugin " + kPlugins +
                                "/test.so serves message only"));
  CHECK_FALSE(contains(check.err, "services[1]"));
  CHECK(contains(check.err, "has 2 problem(s)"));

  const auto start = sbus_test::run_program(SBUS_BUILD_DIR "/bin/sbusd", {"--config", config});
  INFO("start's stderr:\n" << start.err);
  CHECK(start.exit_code == 1);
  CHECK(contains(start.err, config + ":8: services[0].kind: message"));
  CHECK(contains(start.err, "sbusd: not started"));
}

TEST_CASE(
    "A worker whose plugin no longer serves a service's kind leaves it unavailable: its messages go to the "
    "error queue, not into nothing",
    "[plugin-kinds][worker]") {
  // The plugin is named by a link that the test points elsewhere under the
  // running sbusd; a worker that starts again loads what it points at then,
  // without the check a start or a reload runs.
  TempDir dir;
  const std::string link = dir.file("echo.so");
  REQUIRE(::symlink((kPlugins + "/test.so").c_str(), link.c_str()) == 0);
  SbusdOptions options;
  options.services_yaml =
      "  - name: math.add\n"
      "    plugin: math\n"
      "  - name: sink.echo\n"
      "    plugin: " +
      link +
      "\n"
      "    export: echo\n"
      "    kind: message\n";
  SbusdProcess sbusd(options);
  const std::string broker = "amqp://guest@127.0.0.1:" + std::to_string(sbus_test::broker_port()) + "/%2f";
  const pid_t worker = sbus_test::worker_pid_in_log(sbusd.log(), broker);
  REQUIRE(worker > 0);

  const std::string staged = dir.file("echo.so.new");
  REQUIRE(::symlink(SBUS_BUILD_DIR "/test-plugins/call_only_echo_plugin.so", staged.c_str()) == 0);
  REQUIRE(::rename(staged.c_str(), link.c_str()) == 0);
  REQUIRE(::kill(worker, SIGKILL) == 0);
  const std::string why = "plugin " + link + ": service 'echo' serves rpc only, not kind: message";
  REQUIRE(sbus_test::wait_until(
      [&] {
        const pid_t now = sbus_test::worker_pid_in_log(sbusd.log(), broker);
        return now > 0 && now != worker && contains(sbusd.log(), why);
      },
      15s));
  INFO("log:\n" << sbusd.log());

  sbus::Sender sender(sbusd.sender_options());
  REQUIRE(sbus_test::wait_until(
      [&] {
        try {
          return sender.call(sbusd.address("math.add"), "[2,3]", 2s).message == "5";
        } catch (const sbus::SenderError&) {
          return false;
        }
      },
      15s));
  sender.send(sbusd.address("sink.echo"), R"({"n":1})");
  std::vector<sbus::DeadLetter> letters;
  REQUIRE(sbus_test::wait_until([&] { return !(letters = sender.list_errors(sbusd.node())).empty(); }, 10s));
  REQUIRE(letters.size() == 1);
  CHECK(letters[0].header("x-sbus-service") == "sink.echo");
  CHECK(letters[0].header("x-sbus-error") == "service unavailable: " + why);
  CHECK(sbusd.stop() == 0);
}
