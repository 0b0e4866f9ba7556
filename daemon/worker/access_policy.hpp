// Who may call what (docs/security.md#policy): the `policy` rules of the
// config, decided ahead for every caller identity and service of a worker,
// so that a delivery's check is two index lookups.
//
// The rule: with no `policy` key everything is allowed; with one, a
// delivery is allowed when at least one allow rule matches it and no deny
// rule does (deny wins, wherever it stands in the list). A rule matches
// when one of its caller globs matches the caller, one of its service
// globs matches CATEGORY.SERVICE and its kinds (none listed: all) hold the
// delivery's kind: call, message or event (an event is judged at the agent
// of each subscribed service, as its publisher's delivery to that service).
//
// Part of Admission: built on the worker's main thread, read by whichever
// thread reads deliveries. No I/O, no clock; immutable after add_service().
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "worker/envelope.hpp"

namespace sbus {

// What the rules say of one caller, service and kind.
struct AccessVerdict {
  static constexpr int kNoRule = -1;
  bool allowed = true;
  // The deny rule that matched (index in the policy), or kNoRule: none, and
  // (when denied) no allow rule matched either.
  int deny_rule = kNoRule;
};

// The rules alone, for one delivery: pure, and what the tables hold.
AccessVerdict decide_access(const Config& config, const std::string& caller, const std::string& service,
                            DeliveryKind kind);

// Why `verdict` (denied) was reached, for the reply and the audit log.
std::string denial_reason(const Config& config, const AccessVerdict& verdict, const std::string& caller,
                          const std::string& service);

class AccessPolicy {
 public:
  // `config` must outlive this. Identity 0 is kSharedCaller, identity i + 1
  // the config's callers[i] (CallerIdentity::index).
  explicit AccessPolicy(const Config& config);

  // Decides ahead for runner `runner`, which serves `service`.
  void add_service(std::size_t runner, const std::string& service);

  // The verdict for identity `caller` calling runner `runner`.
  const AccessVerdict& verdict(std::size_t caller, std::size_t runner, DeliveryKind kind) const {
    return table_[runner][caller][static_cast<std::size_t>(kind)];
  }

 private:
  const Config& config_;
  std::vector<std::string> identities_;
  // [runner][identity][call, message, event: DeliveryKind's order]
  std::vector<std::vector<std::array<AccessVerdict, 3>>> table_;
};

}  // namespace sbus
