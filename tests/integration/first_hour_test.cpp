// What a new user meets first: the CLI's own verbs, its words for a broker
// that is not there, sbusd --check naming every problem at once, and the
// signals an operator sends.
#include <signal.h>

#include <catch2/catch.hpp>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::DeadPort;
using sbus_test::run_cli;
using sbus_test::run_program;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using sbus_test::TempDir;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("sbus --version and sbus help answer at once, without a broker", "[cli][first-hour]") {
  const auto version = run_cli({"--version"}, 10s);
  CHECK(version.exit_code == 0);
  CHECK(version.out == "sbus " SBUS_VERSION "\n");

  for (const char* help : {"help", "--help"}) {
    const auto usage = run_cli({help}, 10s);
    INFO(help);
    CHECK(usage.exit_code == 0);
    CHECK(contains(usage.out, "sbus call NODE.CATEGORY.SERVICE"));
    CHECK(contains(usage.out, "--timeout"));
  }
  // A verb that does not exist is still a usage error.
  CHECK(run_cli({"halp"}, 10s).exit_code == 2);
}

TEST_CASE("A broker URI of another scheme is a usage error that names it", "[cli][first-hour]") {
  const auto result = run_cli({"ping", "somenode", "--broker", "http://guest:guest@127.0.0.1:5672/"}, 10s);
  CHECK(result.exit_code == 2);
  CHECK(contains(result.err, "http://guest:guest@127.0.0.1:5672/"));
  CHECK(contains(result.err, "not an AMQP URI"));
}

TEST_CASE("A refused connection is called that, with the broker's address", "[cli][first-hour]") {
  DeadPort dead;
  const auto result = run_cli({"ping", "somenode", "--broker", dead.uri(), "--timeout", "2"}, 20s);
  CHECK(result.exit_code == 4);
  INFO(result.err);
  CHECK(contains(result.err, "127.0.0.1:" + std::to_string(dead.port())));
  CHECK(contains(result.err, "connection refused"));
  CHECK_FALSE(contains(result.err, "a socket error occurred"));
}

TEST_CASE("sbusd --check names every problem at once", "[supervisor][check][first-hour]") {
  TempDir dir;
  const std::string config = dir.file("sbusd.yaml");
  sbus_test::write_file(config,
                        "node: check-all\n"
                        "brokers:\n"
                        "  - amqp://guest:guest@127.0.0.1:5672/%2f\n"
                        "secret_file: " +
                            dir.file("no-such-secret") +
                            "\n"
                            "plugin_dir: " +
                            dir.file("no-such-plugins") +
                            "\n"
                            "services:\n"
                            "  - name: math.add\n"
                            "    plugin: math\n"
                            "  - name: other.thing\n"
                            "    plugin: " +
                            dir.file("nowhere.so") + "\nstate_dir: " + dir.file("state") + "\n");
  const auto result = run_program(SBUS_BUILD_DIR "/bin/sbusd", {"--config", config, "--check"}, 30s);
  INFO(result.err);
  CHECK(result.exit_code == 1);
  CHECK(contains(result.err, config + ":4: secret_file: cannot read secret file"));
  CHECK(contains(result.err, config + ":7: services[0].plugin: plugin " + dir.file("no-such-plugins") + "/math.so"));
  CHECK(contains(result.err, config + ":9: services[1].plugin: plugin " + dir.file("nowhere.so")));
  CHECK(contains(result.err, "has 3 problem(s)"));
}

namespace {

// "amqp://guest@127.0.0.1:PORT/%2f", as sbusd's log names the test broker.
std::string redacted_test_broker() {
  return "amqp://guest@127.0.0.1:" + std::to_string(sbus_test::broker_port()) + "/%2f";
}

}  // namespace

TEST_CASE("SIGUSR1 reopens the log file and ends no process", "[supervisor][signal][first-hour]") {
  TempDir logs;
  const std::string log = logs.file("sbusd.log");
  SbusdOptions options;
  options.extra_yaml = "log_file: " + log + "\n";
  SbusdProcess sbusd(options);
  pid_t worker = -1;
  REQUIRE(sbus_test::wait_until(
      [&] { return (worker = sbus_test::worker_pid_in_log(sbus_test::read_file(log), redacted_test_broker())) > 0; },
      10s));

  // An outside logrotate moves the file away, then signals the supervisor.
  REQUIRE(std::rename(log.c_str(), (log + ".1").c_str()) == 0);
  sbusd.signal(SIGUSR1);
  REQUIRE(sbus_test::wait_until([&] { return contains(sbus_test::read_file(log), "SIGUSR1: log file"); }, 10s));
  CHECK(contains(sbus_test::read_file(log), "reopened"));
  CHECK_FALSE(contains(sbus_test::read_file(log + ".1"), "SIGUSR1"));

  // `systemctl kill -s USR1` signals every process of the unit: the worker
  // lives on too.
  REQUIRE(::kill(worker, SIGUSR1) == 0);
  std::this_thread::sleep_for(500ms);
  CHECK(::kill(worker, 0) == 0);
  CHECK(sbusd.running());
  std::vector<std::string> ping = {"ping", sbusd.node(), "--timeout", "5"};
  for (const std::string& arg : sbusd.cli_args()) ping.push_back(arg);
  CHECK(run_cli(ping, 10s).exit_code == 0);
  // Lines written after the reopen land in the new file.
  CHECK(sbusd.stop() == 0);
  CHECK(contains(sbus_test::read_file(log), "stopped"));
}

TEST_CASE("SIGUSR1 without a log file is logged and ends nothing", "[supervisor][signal][first-hour]") {
  SbusdProcess sbusd;
  sbusd.signal(SIGUSR1);
  REQUIRE(sbus_test::wait_until([&] { return contains(sbusd.log(), "SIGUSR1: no log_file"); }, 10s));
  CHECK(sbusd.running());
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("sbusd's retry log calls a refused connection that", "[supervisor][first-hour]") {
  DeadPort dead;
  SbusdOptions options;
  options.brokers = {dead.uri()};
  options.wait_ready = false;
  SbusdProcess sbusd(options);
  REQUIRE(
      sbus_test::wait_until([&] { return contains(sbusd.log(), "127.0.0.1:" + std::to_string(dead.port())); }, 10s));
  REQUIRE(sbus_test::wait_until([&] { return contains(sbusd.log(), "connection refused"); }, 10s));
  INFO(sbusd.log());
  CHECK_FALSE(contains(sbusd.log(), "a socket error occurred"));
  CHECK(sbusd.stop() == 0);
}
