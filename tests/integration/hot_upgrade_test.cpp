// Hot plugin upgrades against a real broker: a new build of a plugin
// installed and `SIGHUP` replaces the worker rolling, with no call lost
// under load; a build that does not load or start is refused while the old
// one serves; `cp` over a loaded plugin leaves its worker running the code
// it loaded. The builds are those of tests/plugins/version_plugin.cpp: the
// service version.which answers the build's name, which is also the
// plugin's stated version.
#include <signal.h>
#include <unistd.h>
#include <utime.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sbus/sender.hpp>

#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using sbus_test::TempDir;
using sbus_test::wait_until;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kBuilds = SBUS_BUILD_DIR "/test-plugins/";

// What version.which answers for a build ("a" -> "\"1.0.a\"").
std::string answer_of(const std::string& build) {
  if (build == "a") return "\"1.0.a\"";
  if (build == "b") return "\"2.0.b\"";
  return "\"" + build + "\"";
}

// Installs the plugin file `file` as DIR/version.so the documented way:
// written beside it, then renamed over it.
void install_file(const TempDir& dir, const std::string& file) {
  const std::string staged = dir.file("version.so.new");
  std::filesystem::copy_file(file, staged, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::rename(staged, dir.file("version.so"));
}

// Installs build `build` ("a": test-plugins/version-a.so) as DIR/version.so.
void install(const TempDir& dir, const std::string& build) {
  install_file(dir, kBuilds + "version-" + build + ".so");
}

// Writes build `build` over DIR/version.so in place, as `cp` does
// (truncate, then write): the file a worker may have mapped changes.
void copy_over(const TempDir& dir, const std::string& build) {
  const std::string bytes = sbus_test::read_file(kBuilds + "version-" + build + ".so");
  REQUIRE_FALSE(bytes.empty());
  std::FILE* file = std::fopen(dir.file("version.so").c_str(), "r+b");
  REQUIRE(file != nullptr);
  REQUIRE(::ftruncate(fileno(file), 0) == 0);
  REQUIRE(std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size());
  std::fclose(file);
}

// A node serving version.which from DIR/version.so; `marker` is the
// service's options: {marker: ...} (the build "once" needs it).
struct NodeOptions {
  std::string marker = "/nonexistent/marker";
  int drain_timeout_seconds = 10;
  std::string extra_yaml;
  std::string extra_services;  // entries added to `services:`, as YAML lines
};
SbusdProcess start_node(const TempDir& plugins, const NodeOptions& node = {}) {
  SbusdOptions options;
  options.plugin_dir = plugins.path();
  options.log_level = "info";
  options.drain_timeout_seconds = node.drain_timeout_seconds;
  options.extra_yaml = node.extra_yaml;
  options.services_yaml = "  - name: version.which\n    plugin: version\n    options:\n      marker: " + node.marker +
                          "\n" + node.extra_services;
  return SbusdProcess(options);
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
  return count;
}

// Senders calling version.which in a loop, each on a thread and a
// connection of its own, until stopped; an answer of any build in `builds`
// counts as ok, anything else (an error reply, no answer in 5 s, another
// answer) as failed.
class Load {
 public:
  Load(const SbusdProcess& node, int senders, std::vector<std::string> builds) : builds_(std::move(builds)) {
    for (int i = 0; i < senders; ++i) {
      threads_.emplace_back(
          [this, options = node.sender_options(), address = node.address("version.which")] { run(options, address); });
    }
  }
  ~Load() { stop(); }

  void stop() {
    stop_ = true;
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }
  int ok() const { return ok_; }
  int failed() const { return failed_; }
  std::string failures() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return failures_;
  }

 private:
  void run(const sbus::SenderOptions& options, const std::string& address) {
    sbus::Sender sender(options);
    while (!stop_) {
      try {
        const sbus::CallResult result = sender.call(address, "[]", 5s);
        bool known = false;
        for (const std::string& build : builds_) known = known || result.message == answer_of(build);
        if (result.ok() && known) {
          ++ok_;
          continue;
        }
        note(result.error_code + ": " + result.message);
      } catch (const sbus::SenderError& e) {
        note(e.what());
      }
    }
  }
  void note(const std::string& failure) {
    ++failed_;
    std::lock_guard<std::mutex> lock(mutex_);
    if (failed_ <= 5) failures_ += failure + "\n";
  }

  std::vector<std::string> builds_;
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0};
  std::atomic<int> failed_{0};
  mutable std::mutex mutex_;
  std::string failures_;
  std::vector<std::thread> threads_;
};

// version.which's answer now, or the error.
std::string which(const SbusdProcess& node) {
  sbus::Sender sender(node.sender_options());
  const sbus::CallResult result = sender.call(node.address("version.which"), "[]", 5s);
  return result.ok() ? result.message : result.error_code + ": " + result.message;
}

// The sbus_plugin_info samples of the node's /metrics at `address`, as
// tests/integration/scrape --parse prints them ("NAME LABEL=VALUE... VALUE"),
// or what went wrong.
std::string plugin_info(const std::string& address) {
  const sbus_test::ProcessResult scrape =
      sbus_test::run_program(SBUS_SOURCE_DIR "/tests/integration/scrape", {address, "/metrics", "--parse"});
  if (scrape.exit_code != 0) return "scrape failed: " + scrape.err;
  std::string samples;
  std::istringstream lines(scrape.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("sbus_plugin_info ", 0) == 0) samples += line + "\n";
  }
  return samples;
}

// sbus stats, sbus services, sbus discover and /metrics (at `metrics`) say
// that the node runs `version`, and /metrics no longer names `previous`.
void check_version_shown(const SbusdProcess& node, const std::string& metrics, const std::string& version,
                         const std::string& previous) {
  const sbus_test::ProcessResult stats = sbus_test::run_cli(sbus_test::concat({"stats", node.node()}, node.cli_args()));
  INFO("sbus stats:\n" << stats.out << stats.err);
  CHECK(stats.exit_code == 0);
  CHECK(stats.out.find("\nplugin version " + version + ": version.which\n") != std::string::npos);
  const sbus_test::ProcessResult services =
      sbus_test::run_cli(sbus_test::concat({"services", node.node(), "--json"}, node.cli_args()));
  INFO("sbus services:\n" << services.out << services.err);
  CHECK(services.exit_code == 0);
  CHECK(services.out.find("\"plugin_version\":\"" + version + "\"") != std::string::npos);
  const sbus_test::ProcessResult discover =
      sbus_test::run_cli(sbus_test::concat({"discover", "--json", "--wait", "1"}, node.cli_args()));
  INFO("sbus discover:\n" << discover.out << discover.err);
  CHECK(discover.exit_code == 0);
  CHECK(discover.out.find("{\"name\":\"version.which\",\"kind\":\"rpc\",\"plugin_version\":\"" + version + "\"}") !=
        std::string::npos);
  // sbus_plugin_info, read by a Prometheus parser.
  std::string info;
  CHECK(wait_until(
      [&] {
        info = plugin_info(metrics);
        return info.find(" version=" + version) != std::string::npos;
      },
      10s, 200ms));
  INFO("sbus_plugin_info:\n" << info);
  CHECK(info.find(" plugin=version ") != std::string::npos);
  CHECK(info.find(" service=version.which ") != std::string::npos);
  CHECK(info.find(" version=" + previous) == std::string::npos);
}

}  // namespace

TEST_CASE("20 hot upgrades alternating two builds under 4 senders fail no call, and the node then runs the last build",
          "[hot_upgrade][reload]") {
  TempDir plugins;
  install(plugins, "a");
  const std::string metrics = plugins.file("metrics.sock");
  NodeOptions options;
  options.extra_yaml = "metrics_listen: " + metrics + "\n";
  SbusdProcess node = start_node(plugins, options);
  REQUIRE(which(node) == answer_of("a"));
  Load load(node, 4, {"a", "b"});
  REQUIRE(wait_until([&] { return load.ok() >= 40; }, 10s));

  const auto started = Clock::now();
  constexpr int kUpgrades = 20;
  std::string build = "a";
  bool all_done = true;
  for (int i = 0; i < kUpgrades && all_done; ++i) {
    build = build == "a" ? "b" : "a";
    install(plugins, build);
    const int ok_before = load.ok();
    node.signal(SIGHUP);
    // The old worker has drained and exited, and calls went on meanwhile.
    all_done = wait_until([&] { return count_of(node.log(), ") exited with code 0") == std::size_t(i + 1); }, 20s) &&
               wait_until([&] { return load.ok() > ok_before + 4; }, 10s);
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  load.stop();
  const std::string log = node.log();
  std::cout << "[figure] " << kUpgrades << " hot upgrades under 4 senders: " << took << " ms, " << load.ok()
            << " calls answered, " << load.failed() << " failed\n";
  INFO("failures:\n" << load.failures() << "log:\n" << log);
  REQUIRE(all_done);
  CHECK(load.failed() == 0);
  CHECK(count_of(log, "reload: plugin " + plugins.file("version.so") + " changed") == kUpgrades);
  CHECK(count_of(log, "not connected in time") == 0);
  CHECK(count_of(log, "restarting in") == 0);
  CHECK(which(node) == answer_of(build));

  // Touched, the same bytes: its worker is left alone.
  REQUIRE(::utime(plugins.file("version.so").c_str(), nullptr) == 0);
  node.signal(SIGHUP);
  CHECK(wait_until([&] { return count_of(node.log(), "0 worker(s) to replace one at a time") == 1; }, 20s));
  CHECK(count_of(node.log(), "replacing worker pid") == std::size_t(kUpgrades));

  const std::string version = build == "a" ? "1.0.a" : "2.0.b";
  check_version_shown(node, metrics, version, build == "a" ? "2.0.b" : "1.0.a");
  CHECK(node.stop() == 0);
}

TEST_CASE("A new build that does not load or start is refused, the old one serves on, and sbusd --check says why",
          "[hot_upgrade][reload]") {
  TempDir plugins;
  install(plugins, "a");
  SbusdProcess node = start_node(plugins);
  Load load(node, 2, {"a"});
  REQUIRE(wait_until([&] { return load.ok() >= 20; }, 10s));
  const std::size_t workers_before = count_of(node.log(), "] worker for ");

  std::string file;
  std::string reason;
  SECTION("its start() throws") {
    file = kBuilds + "version-throws.so";
    reason = "start failed: build 3.0.throws refuses to start";
  }
  SECTION("it needs a symbol nobody defines") {
    file = kBuilds + "version-missing.so";
    reason = "undefined symbol: sbus_test_function_nobody_defines";
  }
  SECTION("it is built for another plugin ABI") {
    file = kBuilds + "bad_abi_plugin.so";
    reason = "built for sbus plugin ABI 999, newer than this sbusd's ABI";
  }
  install_file(plugins, file);
  node.signal(SIGHUP);
  REQUIRE(wait_until([&] { return count_of(node.log(), "reload failed") == 1; }, 20s));
  const int ok_after = load.ok();
  CHECK(wait_until([&] { return load.ok() >= ok_after + 20; }, 10s));
  load.stop();
  const std::string log = node.log();
  INFO("failures:\n" << load.failures() << "log:\n" << log);
  CHECK(load.failed() == 0);
  CHECK(log.find(reason) != std::string::npos);
  CHECK(count_of(log, "] worker for ") == workers_before);  // no worker started or replaced
  CHECK(which(node) == answer_of("a"));

  const sbus_test::ProcessResult check =
      sbus_test::run_program(SBUS_BUILD_DIR "/bin/sbusd", {"--config", node.config_path(), "--check", "--start"});
  INFO("sbusd --check:\n" << check.out << check.err);
  CHECK(check.exit_code == 1);
  CHECK((check.out + check.err).find(reason) != std::string::npos);

  // Fixed: the next reload upgrades.
  install(plugins, "b");
  node.signal(SIGHUP);
  CHECK(wait_until([&] { return which(node) == answer_of("b"); }, 20s));
  CHECK(node.stop() == 0);
}

TEST_CASE("cp over a loaded plugin does not crash its worker, which runs the build it loaded until a reload",
          "[hot_upgrade][reload]") {
  TempDir plugins;
  install(plugins, "a");
  SbusdProcess node = start_node(plugins);
  Load load(node, 2, {"a"});
  REQUIRE(wait_until([&] { return load.ok() >= 20; }, 10s));
  copy_over(plugins, "b");
  const int ok_after = load.ok();
  CHECK(wait_until([&] { return load.ok() >= ok_after + 200; }, 15s));
  load.stop();
  std::string log = node.log();
  INFO("failures:\n" << load.failures() << "log:\n" << log);
  CHECK(load.failed() == 0);
  CHECK(count_of(log, "killed by signal") == 0);
  CHECK(count_of(log, "restarting in") == 0);
  CHECK(which(node) == answer_of("a"));

  // The content changed: a reload takes the new build.
  node.signal(SIGHUP);
  CHECK(wait_until([&] { return which(node) == answer_of("b"); }, 20s));
  log = node.log();
  CHECK(count_of(log, "reload: plugin " + plugins.file("version.so") + " changed") == 1);
  CHECK(node.stop() == 0);
}

TEST_CASE(
    "A replacement worker whose service fails to start after the reload's check passed never takes a call, "
    "and the old worker serves on",
    "[hot_upgrade][reload]") {
  TempDir plugins;
  install(plugins, "a");
  NodeOptions options;
  options.marker = plugins.file("marker");
  SbusdProcess node = start_node(plugins, options);
  Load load(node, 2, {"a"});
  REQUIRE(wait_until([&] { return load.ok() >= 20; }, 10s));
  // The build "once" starts in the reload's check (which creates the
  // marker) and throws in the worker started next.
  install(plugins, "once");
  node.signal(SIGHUP);
  REQUIRE(wait_until(
      [&] { return node.log().find("failed to start; the previous worker keeps serving") != std::string::npos; }, 20s));
  const int ok_after = load.ok();
  CHECK(wait_until([&] { return load.ok() >= ok_after + 20; }, 10s));
  load.stop();
  const std::string log = node.log();
  INFO("failures:\n" << load.failures() << "log:\n" << log);
  CHECK(load.failed() == 0);
  CHECK(log.find("started once already") != std::string::npos);
  CHECK(log.find("could not load or start in a replacement worker") != std::string::npos);
  CHECK(count_of(log, ") exited with code 0") == 0);  // the old worker was not stopped
  CHECK(which(node) == answer_of("a"));
  CHECK(node.stop() == 0);
}

TEST_CASE(
    "A call in progress when its worker is replaced is answered by the old build while the new one serves, "
    "unless it outlasts drain_timeout",
    "[hot_upgrade][reload]") {
  TempDir plugins;
  install(plugins, "a");
  // Within drain_timeout, the call runs until the test has seen the new
  // build answer, then the test releases it: however slow the machine, it
  // is still running when the new worker serves.
  int drain_timeout = 60;
  int call_ms = 50'000;
  bool release_when_new_serves = true;
  SECTION("within drain_timeout: finished by the old worker") {}
  SECTION("past drain_timeout: answered interrupted when the drain timeout passes") {
    drain_timeout = 3;
    call_ms = 50'000;
    release_when_new_serves = false;
  }
  // The slow call runs in version.slow (the same plugin service, a thread of
  // its own), so that version.which answers meanwhile.
  NodeOptions options;
  options.drain_timeout_seconds = drain_timeout;
  options.extra_services = "  - name: version.slow\n    plugin: version\n    export: which\n";
  SbusdProcess node = start_node(plugins, options);
  REQUIRE(which(node) == answer_of("a"));
  const std::string running = plugins.file("slow-call-running");
  const std::string release = plugins.file("slow-call-release");
  std::atomic<bool> answered{false};
  sbus::CallResult slow;
  std::thread caller([&] {
    sbus::Sender sender(node.sender_options());
    const std::string params = "[" + std::to_string(call_ms) + ", \"" + running + "\", \"" + release + "\"]";
    slow = sender.call(node.address("version.slow"), params, 90s);
    answered = true;
  });
  if (!wait_until([&] { return std::filesystem::exists(running); }, 10s)) {
    caller.join();
    FAIL("the slow call did not start: " << slow.error_code << ": " << slow.message << "\nlog:\n" << node.log());
  }
  const auto reloaded = Clock::now();
  install(plugins, "b");
  node.signal(SIGHUP);
  // The new worker answers while the old one still runs the slow call.
  const bool new_serves = wait_until([&] { return which(node) == answer_of("b"); }, 40s);
  const bool answered_before = answered;
  if (release_when_new_serves) std::ofstream(release) << "done\n";
  caller.join();
  const auto waited = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - reloaded).count();
  const std::string log = node.log();
  INFO("slow call: " << slow.error_code << ": " << slow.message << "\nlog:\n" << log);
  CHECK(new_serves);
  CHECK_FALSE(answered_before);
  CHECK(wait_until([&] { return count_of(node.log(), ") exited with code 0") == 1; }, 10s));
  if (release_when_new_serves) {
    CHECK(slow.ok());
    CHECK(slow.message == answer_of("a"));
  } else {
    CHECK(slow.error_code == "interrupted");
    CHECK(slow.message.find("drain timeout (3 s)") != std::string::npos);
    CHECK(log.find("drain timeout: version.slow still running event") != std::string::npos);
    CHECK(waited < call_ms / 1000);  // not run to its end: given up at the drain timeout
  }
  CHECK(node.stop() == 0);
}
