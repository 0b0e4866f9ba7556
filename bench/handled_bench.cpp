// What remembering message ids costs (docs/performance.md, "Handled once"):
// against a running sbusd, calls/s and messages/s with 64 in flight, each
// with ids (the default) and without (SenderOptions::send_message_id off),
// in pairs in one run so that both sides of a pair see the same machine:
// ROUNDS pairs (default 5), which side goes first alternating; the figure
// is the median of the pairs' ratios.
//
//   sbus-handled-bench BROKER_URI SECRET_FILE NODE [SECONDS [ROUNDS [WORKER_PID]]]
//
// NODE must serve test.echo (RPC) and test.record (kind message).
#include <sbus/sender.hpp>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Calls to test.echo with `depth` in flight for `seconds`; calls/s.
double calls_per_second(const sbus::SenderOptions& options, const std::string& node, int depth, double seconds) {
  sbus::Sender sender(options);
  const std::string address = node + ".test.echo";
  std::uint64_t done = 0;
  const auto start = Clock::now();
  for (int i = 0; i < depth; ++i) sender.call_async(address, "[1]");
  while (sender.in_flight() > 0) {
    const auto reply = sender.next_reply(std::chrono::seconds(10));
    if (!reply || !reply->result.ok()) throw std::runtime_error("a call failed or timed out");
    ++done;
    if (seconds_since(start) < seconds) sender.call_async(address, "[1]");
  }
  return static_cast<double>(done) / seconds_since(start);
}

std::uint64_t handled_messages(sbus::Sender& sender, const std::string& node) {
  const sbus::CallResult stats = sender.call(node + ".sbus.stats", "[]", std::chrono::seconds(10));
  const std::string& text = stats.message;
  const std::size_t at = text.find("\"test.record\"");
  const std::size_t handled = text.find("\"handled\":", at);
  if (at == std::string::npos || handled == std::string::npos) throw std::runtime_error("no test.record in stats");
  return std::stoull(text.substr(handled + 10));
}

// `count` messages to test.record from `depth` senders, each with its own
// connection and waiting for each confirm (`depth` in flight), until the
// node has handled them all; messages/s.
double messages_per_second(const sbus::SenderOptions& options, const std::string& node, int depth, int count) {
  sbus::Sender watcher(options);
  const std::uint64_t before = handled_messages(watcher, node);
  std::vector<std::unique_ptr<sbus::Sender>> senders;
  for (int i = 0; i < depth; ++i) senders.push_back(std::make_unique<sbus::Sender>(options));
  std::atomic<bool> failed{false};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < depth; ++i) {
    threads.emplace_back([&, i] {
      try {
        for (int n = i; n < count; n += depth) senders[i]->send(node + ".test.record", "[1]");
      } catch (const std::exception&) {
        failed = true;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  if (failed) throw std::runtime_error("a send failed");
  while (handled_messages(watcher, node) < before + static_cast<std::uint64_t>(count)) {
    if (seconds_since(start) > 120) throw std::runtime_error("messages not handled within 120 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return count / seconds_since(start);
}

// CPU seconds (user + system, all threads) the process `pid` has used; 0
// without a pid.
double cpu_seconds(long pid) {
  if (pid <= 0) return 0;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i >= 14) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// One figure, with and without ids in turn (which goes first alternates),
// `rounds` times: the median of each side and of the pairs' ratios. With a
// worker's pid, also the worker's CPU time per item on each side (the
// machine's load moves that one far less). `measure(ids, &items)` returns
// items/s.
template <class Measure>
void compare(const char* what, int rounds, long worker, Measure measure) {
  std::vector<double> rates[2];
  std::vector<double> cpu[2];
  std::vector<double> ratios;
  for (int round = 0; round < rounds; ++round) {
    double pair[2];
    for (int n = 0; n < 2; ++n) {
      const int side = (round + n) % 2;  // 0: without ids, 1: with
      const double cpu_before = cpu_seconds(worker);
      double items = 0;
      pair[side] = measure(side == 1, &items);
      rates[side].push_back(pair[side]);
      if (items > 0) cpu[side].push_back(1e6 * (cpu_seconds(worker) - cpu_before) / items);
    }
    ratios.push_back(pair[1] / pair[0]);
  }
  std::printf(
      "%-26s without ids %6.0f  with ids %6.0f  (median of %d pairs' ratios: %+.1f%%; pairs %+.1f%% to %+.1f%%)\n",
      what, median(rates[0]), median(rates[1]), rounds, 100.0 * (median(ratios) - 1),
      100.0 * (*std::min_element(ratios.begin(), ratios.end()) - 1),
      100.0 * (*std::max_element(ratios.begin(), ratios.end()) - 1));
  if (worker > 0) {
    std::printf("%-26s worker CPU per item: without ids %.1f us, with ids %.1f us (medians)\n", "", median(cpu[0]),
                median(cpu[1]));
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: sbus-handled-bench BROKER_URI SECRET_FILE NODE [SECONDS [ROUNDS [WORKER_PID]]]\n";
    return 2;
  }
  sbus::SenderOptions with_ids;
  with_ids.brokers = {argv[1]};
  std::ifstream secret_file(argv[2]);
  std::getline(secret_file, with_ids.secret);
  const std::string node = argv[3];
  const double seconds = argc > 4 ? std::stod(argv[4]) : 5;
  sbus::SenderOptions without_ids = with_ids;
  without_ids.send_message_id = false;
  const int rounds = argc > 5 ? std::stoi(argv[5]) : 5;
  constexpr int kDepth = 64;
  const auto options = [&](bool ids) { return ids ? with_ids : without_ids; };
  const long worker = argc > 6 ? std::stol(argv[6]) : 0;
  compare("calls/s, 64 in flight:", rounds, worker, [&](bool ids, double* items) {
    const auto start = Clock::now();
    const double rate = calls_per_second(options(ids), node, kDepth, seconds);
    *items = rate * seconds_since(start);
    return rate;
  });
  compare("messages/s, 64 in flight:", rounds, worker, [&](bool ids, double* items) {
    *items = 4000;
    return messages_per_second(options(ids), node, kDepth, 4000);
  });
  return 0;
}
