// sbus-abi-bench: what the C ABI costs per call, by the language of the
// service (docs/performance.md, "Plugins by language").
//
//   sbus-abi-bench --port PORT --sbusd PATH --plugin-dir DIR [--calls N]
//
// Starts one sbusd on the broker at 127.0.0.1:PORT serving four echo
// services, C++ (test.echo), C (c_example's echo, which also counts its
// calls), Rust and Go, and calls each in turn from one sbus::Sender, one
// call at a time: N calls per service per round (default 2000), 3 rounds,
// the services interleaved within each round so that a busy machine weighs
// on all of them alike. Prints calls/s and p50 per service over all rounds.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sbus/sender.hpp>

#include "child_process.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kNode = "bench-abi";
constexpr const char* kSecret = "sbus-abi-bench secret, 16 bytes or more";
constexpr int kRounds = 3;

struct Service {
  const char* label;
  const char* name;  // CATEGORY.SERVICE
  const char* yaml;
};

const Service kServices[] = {
    {"C++", "cpp.echo", "  - name: cpp.echo\n    plugin: test\n    export: echo\n"},
    {"C", "c.echo", "  - name: c.echo\n    plugin: c_example\n"},
    {"Rust", "rust.echo", "  - name: rust.echo\n    plugin: rust_example\n"},
    {"Go", "go.echo", "  - name: go.echo\n    plugin: go_example\n"},
};

int run(int port, const std::string& sbusd_path, const std::string& plugin_dir, int calls) {
  const std::string broker = "amqp://guest:guest@127.0.0.1:" + std::to_string(port) + "/%2f";
  const std::string dir = "/tmp/sbus-abi-bench." + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::ofstream config(dir + "/sbusd.yaml");
  config << "node: " << kNode << "\nbrokers: [" << broker << "]\nsecret: \"" << kSecret
         << "\"\nplugin_dir: " << std::filesystem::absolute(plugin_dir).string() << "\nlog_level: warn\nservices:\n";
  for (const Service& service : kServices) config << service.yaml;
  config.close();
  bench::SpawnOptions spawn;
  spawn.args = {sbusd_path, "--config", dir + "/sbusd.yaml"};
  const pid_t sbusd = bench::spawn(spawn);

  sbus::SenderOptions options;
  options.brokers = {broker};
  options.secret = kSecret;
  sbus::Sender sender(options);
  bool up = false;
  for (int attempt = 0; attempt < 60 && !up; ++attempt) {
    try {
      up = sender.ping(kNode, 1s);
    } catch (const sbus::SenderError&) {
      std::this_thread::sleep_for(500ms);
    }
  }
  std::map<std::string, std::vector<double>> latencies_us;
  std::map<std::string, double> busy_s;
  int rc = up ? 0 : 1;
  for (int round = 0; round < kRounds && rc == 0; ++round) {
    for (const Service& service : kServices) {
      const std::string address = std::string(kNode) + "." + service.name;
      const auto start = Clock::now();
      for (int i = 0; i < calls; ++i) {
        const auto before = Clock::now();
        const sbus::CallResult result = sender.call(address, R"({"n":[1,2,3],"s":"echo"})", 10s);
        if (!result.ok()) {
          std::fprintf(stderr, "%s: %s %s\n", service.name, result.error_code.c_str(), result.message.c_str());
          rc = 1;
          break;
        }
        latencies_us[service.label].push_back(std::chrono::duration<double, std::micro>(Clock::now() - before).count());
      }
      busy_s[service.label] += std::chrono::duration<double>(Clock::now() - start).count();
    }
  }
  bench::stop_process(sbusd, 10s);
  std::filesystem::remove_all(dir);
  if (!up) std::fprintf(stderr, "sbusd did not answer PING within 30 s\n");
  if (rc != 0) return rc;
  std::printf("%-6s %10s %10s %8s\n", "plugin", "calls/s", "p50 us", "vs C++");
  const double cpp_rate = static_cast<double>(latencies_us["C++"].size()) / busy_s["C++"];
  for (const Service& service : kServices) {
    std::vector<double>& all = latencies_us[service.label];
    std::sort(all.begin(), all.end());
    const double rate = static_cast<double>(all.size()) / busy_s[service.label];
    std::printf("%-6s %10.0f %10.1f %7.1f%%\n", service.label, rate, all[all.size() / 2],
                100.0 * (rate - cpp_rate) / cpp_rate);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  int calls = 2000;
  std::string sbusd;
  std::string plugin_dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    if (arg == "--port") port = std::atoi(argv[i + 1]);
    if (arg == "--sbusd") sbusd = argv[i + 1];
    if (arg == "--plugin-dir") plugin_dir = argv[i + 1];
    if (arg == "--calls") calls = std::atoi(argv[i + 1]);
  }
  if (port <= 0 || sbusd.empty() || plugin_dir.empty() || calls <= 0) {
    std::fprintf(stderr, "usage: sbus-abi-bench --port PORT --sbusd PATH --plugin-dir DIR [--calls N]\n");
    return 2;
  }
  try {
    return run(port, sbusd, plugin_dir, calls);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sbus-abi-bench: %s\n", e.what());
    return 1;
  }
}
