// sbus-defer-bench: how late deferred messages arrive (docs/reliability.md,
// "Deferred delivery"; docs/performance.md has a run).
//
//   sbus-defer-bench --port PORT --sbusd PATH --plugin-dir DIR [--quick]
//                    [--delays MS,MS,...] [--spaced N] [--burst N]
//
// Starts sbusd once for the node bench-defer against the broker on
// 127.0.0.1:PORT, so that it declares the levels and binds its node queue,
// then stops it and reads the node queue itself: a message's lateness is
// when this process reads it minus its x-sbus-due, which the sender sets
// from its clock before the publish plus the delay (so the publish's own
// time counts as lateness, and sbusd's dispatch, well under a millisecond,
// does not). Sends, with sbus::Sender and publisher confirms:
//   - for each delay of 100 ms, 1 s and 10 s, a message every 20 ms (200 of
//     each; --quick: 20);
//   - 10,000 messages (--quick: 500) all due at the same time.
// Prints p50, p99 and max lateness, and how many arrived early (never
// should), one line per pattern. --delays, --spaced and --burst (0: none)
// replace the delays and counts, e.g. to compare a delay of one level
// (1280 ms: level 7 alone) with one of seven (1270 ms: levels 6 to 0).
#include <amqp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sbus/sender.hpp>

#include "child_process.hpp"
#include "raw_amqp.hpp"

namespace {

using namespace std::chrono_literals;
using Wall = std::chrono::system_clock;

constexpr const char* kNode = "bench-defer";
constexpr const char* kSecret = "sbus-defer-bench secret, 16 bytes or more";

struct Options {
  int port = 0;
  std::string sbusd;
  std::string plugin_dir;
  bool quick = false;
  std::vector<std::chrono::milliseconds> delays{100ms, 1000ms, 10000ms};
  long spaced = -1;  // -1: 200, or 20 with --quick
  long burst = -1;   // -1: 10,000, or 500 with --quick
};

std::int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Wall::now().time_since_epoch()).count();
}

// Reads the node queue on a thread of its own and keeps each message's
// lateness in microseconds.
class LatenessReader {
 public:
  explicit LatenessReader(int port) : connection_(port) {
    amqp_basic_consume(connection_.get(), bench::kRpcChannel, bench::bytes(kNode), amqp_empty_bytes, 0, 1, 0,
                       amqp_empty_table);
    connection_.check("consume " + std::string(kNode));
    thread_ = std::thread([this] { read(); });
  }
  ~LatenessReader() {
    stop_ = true;
    thread_.join();
  }

  // Waits until `count` messages were read or `timeout` passed; returns
  // their lateness and forgets them.
  std::vector<std::int64_t> take(std::size_t count, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (late_us_.size() >= count || std::chrono::steady_clock::now() >= deadline) {
          std::vector<std::int64_t> taken;
          taken.swap(late_us_);
          return taken;
        }
      }
      std::this_thread::sleep_for(10ms);
    }
  }

 private:
  void read() {
    while (!stop_) {
      amqp_maybe_release_buffers(connection_.get());
      amqp_envelope_t envelope;
      timeval wait{0, 100000};
      const amqp_rpc_reply_t reply = amqp_consume_message(connection_.get(), &envelope, &wait, 0);
      const std::int64_t now = wall_us();
      if (reply.reply_type != AMQP_RESPONSE_NORMAL) continue;
      std::int64_t due_ms = -1;
      const amqp_table_t& headers = envelope.message.properties.headers;
      for (int i = 0; i < headers.num_entries; ++i) {
        if (bench::text(headers.entries[i].key) == "x-sbus-due" &&
            headers.entries[i].value.kind == AMQP_FIELD_KIND_UTF8) {
          due_ms = std::atoll(bench::text(headers.entries[i].value.value.bytes).c_str());
        }
      }
      amqp_destroy_envelope(&envelope);
      if (due_ms < 0) continue;
      std::lock_guard<std::mutex> lock(mutex_);
      late_us_.push_back(now - due_ms * 1000);
    }
  }

  bench::RawConnection connection_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::int64_t> late_us_;
};

void print_line(const std::string& pattern, std::size_t sent, std::vector<std::int64_t> late_us) {
  std::sort(late_us.begin(), late_us.end());
  const auto at = [&](double p) {
    if (late_us.empty()) return 0.0;
    const std::size_t rank = static_cast<std::size_t>(std::max(1.0, p * static_cast<double>(late_us.size()) + 0.999));
    return static_cast<double>(late_us[std::min(rank, late_us.size()) - 1]) / 1000.0;
  };
  const long early = std::count_if(late_us.begin(), late_us.end(), [](std::int64_t us) { return us < 0; });
  std::printf("%-28s %6zu %8zu %9.1f %9.1f %9.1f %6ld\n", pattern.c_str(), sent, late_us.size(), at(0.5), at(0.99),
              at(1.0), early);
  std::fflush(stdout);
}

// Declares the levels and the node queue's binding: sbusd does it when it
// connects; stopped once the node answers PING.
void prepare_topology(const Options& options, sbus::SenderOptions sender_options) {
  const std::string dir = "/tmp/sbus-defer-bench." + std::to_string(::getpid());
  std::system(("mkdir -p " + dir).c_str());
  const std::string config = dir + "/sbusd.yaml";
  std::ofstream(config) << "node: " << kNode << "\nbrokers: [" << sender_options.brokers[0] << "]\nsecret: \""
                        << kSecret << "\"\nplugin_dir: " << std::filesystem::absolute(options.plugin_dir).string()
                        << "\nlog_level: warn\n"
                        << "services:\n  - name: bench.echo\n    plugin: test\n    export: echo\n";
  bench::SpawnOptions spawn;
  spawn.args = {options.sbusd, "--config", config};
  const pid_t sbusd = bench::spawn(spawn);
  sbus::Sender sender(std::move(sender_options));
  bool up = false;
  for (int attempt = 0; attempt < 60 && !up; ++attempt) {
    try {
      up = sender.ping(kNode, 1s);
    } catch (const sbus::SenderError&) {
      std::this_thread::sleep_for(500ms);
    }
  }
  bench::stop_process(sbusd, 10s);
  std::system(("rm -rf " + dir).c_str());
  if (!up) throw std::runtime_error("sbusd did not answer PING within 30 s");
}

int run(const Options& options) {
  sbus::SenderOptions sender_options;
  sender_options.brokers = {"amqp://guest:guest@127.0.0.1:" + std::to_string(options.port) + "/%2f"};
  sender_options.secret = kSecret;
  prepare_topology(options, sender_options);
  LatenessReader reader(options.port);
  sbus::Sender sender(sender_options);
  const std::string address = std::string(kNode) + ".bench.sink";
  std::printf("sbus-defer-bench: lateness = read time minus due time, in ms\n");
  std::printf("%-28s %6s %8s %9s %9s %9s %6s\n", "pattern", "sent", "arrived", "p50", "p99", "max", "early");
  const std::size_t spaced = options.spaced >= 0 ? options.spaced : options.quick ? 20 : 200;
  for (const std::chrono::milliseconds delay : options.delays) {
    sbus::SendOptions send;
    send.delay = delay;
    for (std::size_t i = 0; i < spaced; ++i) {
      sender.send(address, "[]", send);
      std::this_thread::sleep_for(20ms);
    }
    print_line("delay " + std::to_string(delay.count()) + " ms, one per 20 ms", spaced,
               reader.take(spaced, std::chrono::duration_cast<std::chrono::seconds>(delay) + 60s));
  }
  // All due at once: sent from now on, due after a margin that covers the
  // sending (a message not sent before it is due is counted as not sent).
  const std::size_t burst = options.burst >= 0 ? options.burst : options.quick ? 500 : 10000;
  if (burst == 0) return 0;
  sbus::SendOptions send;
  const std::chrono::milliseconds margin = 5s + std::chrono::milliseconds(8 * static_cast<long>(burst));
  send.at = Wall::now() + margin;
  std::size_t sent = 0;
  for (; sent < burst && Wall::now() + 100ms < *send.at; ++sent) sender.send(address, "[]", send);
  print_line(std::to_string(burst) + " due at the same time", sent,
             reader.take(sent, std::chrono::duration_cast<std::chrono::seconds>(margin) + 120s));
  return 0;
}

const char* const kUsage =
    "usage: sbus-defer-bench --port PORT --sbusd PATH --plugin-dir DIR [--quick] [--delays MS,MS,...] [--spaced N] "
    "[--burst N]\n";

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
    } else if (arg == "--quick") {
      options.quick = true;
    } else if (arg == "--delays" && i + 1 < argc) {
      options.delays.clear();
      for (const char* at = argv[++i]; *at != '\0';) {
        char* end = nullptr;
        const long ms = std::strtol(at, &end, 10);
        if (end == at || ms <= 0) break;
        options.delays.emplace_back(ms);
        at = *end == ',' ? end + 1 : end;
      }
    } else if (arg == "--spaced" && i + 1 < argc) {
      options.spaced = std::max(0L, std::atol(argv[++i]));
    } else if (arg == "--burst" && i + 1 < argc) {
      options.burst = std::max(0L, std::atol(argv[++i]));
    } else {
      std::fprintf(stderr, "%s", kUsage);
      return 2;
    }
  }
  if (options.port <= 0 || options.sbusd.empty() || options.plugin_dir.empty() || options.delays.empty()) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sbus-defer-bench: %s\n", e.what());
    return 1;
  }
}
