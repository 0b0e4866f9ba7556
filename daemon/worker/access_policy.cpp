#include "worker/access_policy.hpp"

#include <algorithm>

#include "base/caller_id.hpp"

namespace sbus {
namespace {

bool any_matches(const std::vector<std::string>& globs, const std::string& text) {
  return std::ranges::any_of(globs, [&](const std::string& glob) { return glob_matches(glob, text); });
}

bool rule_matches(const PolicyRule& rule, const std::string& caller, const std::string& service, DeliveryKind kind) {
  const char* kind_name = kind == DeliveryKind::kCall ? "call" : kind == DeliveryKind::kEvent ? "event" : "message";
  const bool kind_listed = rule.kinds.empty() || std::ranges::find(rule.kinds, kind_name) != rule.kinds.end();
  return kind_listed && any_matches(rule.callers, caller) && any_matches(rule.services, service);
}

}  // namespace

AccessVerdict decide_access(const Config& config, const std::string& caller, const std::string& service,
                            DeliveryKind kind) {
  AccessVerdict verdict;
  if (!config.has_policy) return verdict;
  bool allowed = false;
  for (std::size_t i = 0; i < config.policy.size(); ++i) {
    const PolicyRule& rule = config.policy[i];
    if (!rule_matches(rule, caller, service, kind)) continue;
    if (!rule.allow) {
      verdict.allowed = false;
      verdict.deny_rule = static_cast<int>(i);
      return verdict;
    }
    allowed = true;
  }
  verdict.allowed = allowed;
  return verdict;
}

std::string denial_reason(const Config& config, const AccessVerdict& verdict, const std::string& caller,
                          const std::string& service) {
  const std::string subject = "caller " + caller + " may not reach " + service;
  if (verdict.deny_rule == AccessVerdict::kNoRule) return subject + ": no rule of the policy allows it";
  const PolicyRule& rule = config.policy[static_cast<std::size_t>(verdict.deny_rule)];
  return subject + ": denied by policy[" + std::to_string(verdict.deny_rule) + "] (" + config.path + ":" +
         std::to_string(rule.line) + ")";
}

AccessPolicy::AccessPolicy(const Config& config) : config_(config) {
  identities_.emplace_back(kSharedCaller);
  for (const CallerConfig& caller : config.callers) identities_.push_back(caller.id);
}

void AccessPolicy::add_service(std::size_t runner, const std::string& service) {
  if (table_.size() <= runner) table_.resize(runner + 1);
  auto& row = table_[runner];
  row.clear();
  for (const std::string& identity : identities_) {
    row.push_back({decide_access(config_, identity, service, DeliveryKind::kCall),
                   decide_access(config_, identity, service, DeliveryKind::kMessage),
                   decide_access(config_, identity, service, DeliveryKind::kEvent)});
  }
}

}  // namespace sbus
