// sbus-codec-bench: the wire codec alone, on the bodies of a math.add call
// and its reply, as sbus::Sender and sbusd write them. Prints nanoseconds
// per operation, the median of 5 rounds of 200,000.
//
// usage: sbus-codec-bench [OPERATIONS]
//   OPERATIONS per round instead of 200,000: a short run to count
//   instructions under valgrind --tool=callgrind, which is repeatable where
//   the nanoseconds of this shared machine are not.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "protocol/wire_codec.hpp"

namespace {

constexpr int kRounds = 5;
int operations = 200000;

double median_ns(const std::function<void()>& operation) {
  std::vector<double> rounds;
  for (int round = 0; round < kRounds; ++round) {
    const auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < operations; ++i) operation();
    const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - started;
    rounds.push_back(took.count() / operations);
  }
  std::sort(rounds.begin(), rounds.end());
  return rounds[kRounds / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 2 || (argc == 2 && (operations = std::atoi(argv[1])) <= 0)) {
    std::fprintf(stderr, "usage: sbus-codec-bench [OPERATIONS]\n");
    return 2;
  }
  const sbus::Event event{"host-4711-1", "6f1c0b3b6a0c5e9f1e2d3c4b5a69788796a5b4c3", "math", "add", "[1, 2]"};
  const sbus::Reply reply{"host-4711-1", "3", ""};
  const std::string event_body = sbus::encode_event(event);
  const std::string reply_body = sbus::encode_reply(reply);

  sbus::Event decoded_event;
  sbus::Reply decoded_reply;
  sbus::DecodeFailure failure;
  bool ok = true;
  const double decode_event_ns = median_ns([&] { ok &= sbus::decode_event(event_body, &decoded_event, &failure); });
  const double decode_reply_ns = median_ns([&] { ok &= sbus::decode_reply(reply_body, &decoded_reply, &failure); });
  std::size_t written = 0;
  const double encode_event_ns = median_ns([&] { written += sbus::encode_event(event).size(); });
  const double encode_reply_ns = median_ns([&] { written += sbus::encode_reply(reply).size(); });
  if (!ok || written == 0) {
    std::fprintf(stderr, "sbus-codec-bench: a decode failed: %s\n", failure.detail.c_str());
    return 1;
  }
  std::printf("sbus-codec-bench: ns per operation, median of %d rounds of %d\n", kRounds, operations);
  std::printf("  decode_event (%zu bytes)   %8.0f\n", event_body.size(), decode_event_ns);
  std::printf("  decode_reply (%zu bytes)   %8.0f\n", reply_body.size(), decode_reply_ns);
  std::printf("  encode_event               %8.0f\n", encode_event_ns);
  std::printf("  encode_reply               %8.0f\n", encode_reply_ns);
  return 0;
}
