// What remembering message ids costs (docs/performance.md, "Handled once"):
// against a running sbusd, calls/s with 64 in flight and messages/s, each
// with ids (the default) and without (SenderOptions::send_message_id off),
// alternated in one run so that both see the same machine.
//
//   sbus-handled-bench BROKER_URI SECRET_FILE NODE [SECONDS]
//
// NODE must serve test.echo (RPC) and test.record (kind message).
#include <sbus/sender.hpp>

#include <chrono>
#include <cstdio>
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

// `count` messages to test.record, sent by one sender with confirms, until
// the node has handled them all; messages/s.
double messages_per_second(const sbus::SenderOptions& options, const std::string& node, int count) {
  sbus::Sender sender(options);
  sbus::Sender watcher(options);
  const std::uint64_t before = handled_messages(watcher, node);
  const auto start = Clock::now();
  for (int i = 0; i < count; ++i) sender.send(node + ".test.record", "[1]");
  while (handled_messages(watcher, node) < before + static_cast<std::uint64_t>(count)) {
    if (seconds_since(start) > 120) throw std::runtime_error("messages not handled within 120 s");
  }
  return count / seconds_since(start);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: sbus-handled-bench BROKER_URI SECRET_FILE NODE [SECONDS]\n";
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
  double calls[2] = {0, 0};
  double messages[2] = {0, 0};
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round) {
    calls[0] += calls_per_second(without_ids, node, 64, seconds) / kRounds;
    calls[1] += calls_per_second(with_ids, node, 64, seconds) / kRounds;
    messages[0] += messages_per_second(without_ids, node, 2000) / kRounds;
    messages[1] += messages_per_second(with_ids, node, 2000) / kRounds;
  }
  std::printf("calls/s, 64 in flight:   without ids %.0f  with ids %.0f  (%.1f%%)\n", calls[0], calls[1],
              100.0 * (calls[1] - calls[0]) / calls[0]);
  std::printf("messages/s (confirmed):  without ids %.0f  with ids %.0f  (%.1f%%)\n", messages[0], messages[1],
              100.0 * (messages[1] - messages[0]) / messages[0]);
  return 0;
}
