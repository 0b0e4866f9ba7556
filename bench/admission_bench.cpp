// sbus-admission-bench: Admission::decide() alone on a math.add call (a
// py-servicebus compat token, so identity py-servicebus), with no policy
// beside a policy of 50 rules whose last one lets the call in. Prints
// nanoseconds per decision, the median of 5 rounds of 200,000, each round
// of one and then of the other, so both see the same machine.
//
// usage: sbus-admission-bench [OPERATIONS [none|policy]]
//   OPERATIONS per round instead of 200,000; with `none` or `policy` only
//   that side runs: a short run to count instructions under valgrind
//   --tool=callgrind, which is repeatable where the nanoseconds of this
//   shared machine are not.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "protocol/token.hpp"
#include "protocol/wire_codec.hpp"
#include "worker/admission.hpp"

namespace {

constexpr int kRounds = 5;
constexpr const char* kSecret = "the benchmark's secret, long enough";

sbus::Config make_config(int rules) {
  sbus::Config config;
  config.node = "BENCH";
  config.secret = kSecret;
  config.accept = {"compat"};
  config.has_policy = rules > 0;
  for (int i = 1; i < rules; ++i) {
    sbus::PolicyRule rule;
    rule.allow = i % 5 != 0;
    rule.callers = {"team" + std::to_string(i) + "-*"};
    rule.services = {"bench.*", "svc" + std::to_string(i) + ".*"};
    config.policy.push_back(rule);
  }
  if (rules > 0) config.policy.push_back(sbus::PolicyRule{true, {"py-*"}, {"math.*", "test.*"}, {}, 0});
  return config;
}

}  // namespace

int main(int argc, char** argv) {
  int operations = 200000;
  const std::string only = argc == 3 ? argv[2] : "";
  if (argc > 3 || (argc >= 2 && (operations = std::atoi(argv[1])) <= 0) ||
      (argc == 3 && only != "none" && only != "policy")) {
    std::fprintf(stderr, "usage: sbus-admission-bench [OPERATIONS [none|policy]]\n");
    return 2;
  }
  sbus::ServiceConfig add;
  add.name = "math.add";
  add.category = "math";
  add.service = "add";
  sbus::Event event{"bench-1", sbus::compat_token(kSecret, sbus::local_date(std::chrono::system_clock::now())), "math",
                    "add", "[1,2]"};
  const std::string body = sbus::encode_event(event);
  const sbus::Config configs[2] = {make_config(0), make_config(50)};
  std::vector<double> ns[2];
  sbus::UnsentReplies unsent;
  for (int round = 0; round < kRounds; ++round) {
    for (int which = 0; which < 2; ++which) {
      if ((only == "none" && which == 1) || (only == "policy" && which == 0)) continue;
      sbus::Admission admission(configs[which], nullptr, nullptr);
      admission.add_service(0, add);
      admission.read_crashes();
      const auto started = std::chrono::steady_clock::now();
      for (int i = 0; i < operations; ++i) {
        sbus::Delivery delivery;
        delivery.envelope.kind = sbus::DeliveryKind::kCall;
        delivery.envelope.reply_to = "amq.rabbitmq.reply-to.x";
        delivery.body = body;
        if (admission.decide(delivery, unsent).verdict != sbus::Decision::Verdict::kDispatch) return 1;
      }
      const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - started;
      ns[which].push_back(took.count() / operations);
    }
  }
  if (!only.empty()) return 0;
  for (auto& rounds : ns) std::sort(rounds.begin(), rounds.end());
  const double none = ns[0][kRounds / 2], policy = ns[1][kRounds / 2];
  std::printf("admission of a math.add call, ns per decision: no policy %.0f, 50-rule policy %.0f (ratio %.3f)\n", none,
              policy, policy / none);
  return 0;
}
