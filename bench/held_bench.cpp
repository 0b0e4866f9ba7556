// sbus-held-bench: what holding a handler's sends costs (docs/plugins.md,
// "What a handler sends"; docs/performance.md has a run).
//
//   sbus-held-bench --port PORT --sbusd PATH --plugin-dir DIR [--calls N] [--rounds R]
//
// Starts sbusd for the node bench-held against the broker on
// 127.0.0.1:PORT with test.sends (a call service that sends one message per
// call through its context's sender) and a message sink (test.echo). One
// caller makes N calls (default 2000) one after the other, in R rounds
// (default 4) that alternate the two ways of sending: held (released after
// the handler returns, then the reply) and SendOptions::now (sent inside
// the handler). Prints calls/s of each, summed over the rounds, and their
// ratio. Both confirm each message before the reply; a held send adds the
// hold and its release through the worker's outbox connection.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include <sbus/sender.hpp>

#include "child_process.hpp"

namespace {

using namespace std::chrono_literals;

constexpr const char* kNode = "bench-held";
constexpr const char* kSecret = "sbus-held-bench secret, 16 bytes or more";

struct Options {
  int port = 0;
  std::string sbusd;
  std::string plugin_dir;
  int calls = 2000;
  int rounds = 4;
};

pid_t start_sbusd(const Options& options, const std::string& broker, const std::string& dir) {
  const std::string config = dir + "/sbusd.yaml";
  std::ofstream(config) << "node: " << kNode << "\nbrokers: [" << broker << "]\nsecret: \"" << kSecret
                        << "\"\nstate_dir: " << dir
                        << "/state\nplugin_dir: " << std::filesystem::absolute(options.plugin_dir).string()
                        << "\nlog_level: warn\n"
                        << "services:\n  - name: bench.sends\n    plugin: test\n    export: sends\n"
                        << "  - name: bench.sink\n    plugin: test\n    export: echo\n    kind: message\n";
  bench::SpawnOptions spawn;
  spawn.args = {options.sbusd, "--config", config};
  return bench::spawn(spawn);
}

// Seconds for `calls` calls that each send one message, held or now.
double timed_calls(sbus::Sender& sender, int calls, bool now) {
  const std::string params =
      std::string(R"({"to":")") + kNode + R"(.bench.sink","key":"bench")" + (now ? R"(,"now":true})" : "}");
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) {
    const sbus::CallResult result = sender.call(std::string(kNode) + ".bench.sends", params, 10s);
    if (!result.ok()) throw std::runtime_error("call failed: " + result.error_code + ": " + result.message);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

int run(const Options& options) {
  sbus::SenderOptions sender_options;
  sender_options.brokers = {"amqp://guest:guest@127.0.0.1:" + std::to_string(options.port) + "/%2f"};
  sender_options.secret = kSecret;
  const std::string dir = "/tmp/sbus-held-bench." + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const pid_t sbusd = start_sbusd(options, sender_options.brokers[0], dir);
  sbus::Sender sender(sender_options);
  bool up = false;
  for (int attempt = 0; attempt < 60 && !up; ++attempt) {
    try {
      up = sender.ping(kNode, 1s);
    } catch (const sbus::SenderError&) {
      std::this_thread::sleep_for(500ms);
    }
  }
  int status = 0;
  try {
    if (!up) throw std::runtime_error("sbusd did not answer PING within 30 s");
    timed_calls(sender, 100, false);  // warm up: connections, the outbox's own
    timed_calls(sender, 100, true);
    const int per_round = std::max(1, options.calls / options.rounds);
    double held = 0;
    double now = 0;
    for (int round = 0; round < options.rounds; ++round) {
      held += timed_calls(sender, per_round, false);
      now += timed_calls(sender, per_round, true);
    }
    const int total = per_round * options.rounds;
    std::printf("sbus-held-bench: %d calls each, one message sent per call, one caller, %d rounds\n", total,
                options.rounds);
    std::printf("%-10s %10s %12s\n", "send", "calls/s", "us/call");
    std::printf("%-10s %10.0f %12.1f\n", "now", total / now, now * 1e6 / total);
    std::printf("%-10s %10.0f %12.1f\n", "held", total / held, held * 1e6 / total);
    std::printf("held/now calls/s: %.3f\n", now / held);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sbus-held-bench: %s\n", e.what());
    status = 1;
  }
  bench::stop_process(sbusd, 10s);
  std::filesystem::remove_all(dir);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--port" && i + 1 < argc) {
      options.port = std::atoi(argv[++i]);
    } else if (arg == "--sbusd" && i + 1 < argc) {
      options.sbusd = argv[++i];
    } else if (arg == "--plugin-dir" && i + 1 < argc) {
      options.plugin_dir = argv[++i];
    } else if (arg == "--calls" && i + 1 < argc) {
      options.calls = std::atoi(argv[++i]);
    } else if (arg == "--rounds" && i + 1 < argc) {
      options.rounds = std::atoi(argv[++i]);
    } else {
      options.port = 0;
      break;
    }
  }
  if (options.port <= 0 || options.sbusd.empty() || options.plugin_dir.empty() || options.calls <= 0 ||
      options.rounds <= 0) {
    std::fprintf(stderr, "usage: sbus-held-bench --port PORT --sbusd PATH --plugin-dir DIR [--calls N] [--rounds R]\n");
    return 2;
  }
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sbus-held-bench: %s\n", e.what());
    return 1;
  }
}
