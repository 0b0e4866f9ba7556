#include "protocol/deferral.hpp"

namespace sbus {

using std::chrono::milliseconds;

std::string_view target_kind_name(DeferTarget::Kind kind) {
  return kind == DeferTarget::Kind::kNode ? "node" : "topic";
}

std::string delay_level_name(std::string_view prefix, int level) {
  return std::string(prefix) + "." + std::to_string(level);
}

std::string delay_out_exchange(std::string_view prefix) {
  return std::string(prefix) + ".out";
}

std::string delay_nodes_exchange(std::string_view prefix) {
  return std::string(prefix) + ".nodes";
}

std::string delay_level_header(int level) {
  return "sbus-delay-" + std::to_string(level);
}

std::vector<DelayLevel> delay_levels(std::string_view prefix) {
  std::vector<DelayLevel> levels;
  for (int level = 0; level < kDelayLevels; ++level) {
    levels.push_back(DelayLevel{level, delay_level_name(prefix, level), (std::int64_t{1} << level) * kDelayUnit.count(),
                                level == 0 ? delay_out_exchange(prefix) : delay_level_name(prefix, level - 1),
                                delay_level_header(level)});
  }
  return levels;
}

std::optional<DelayPlan> plan_delay(milliseconds delay, std::string* error) {
  if (delay.count() <= 0) {
    *error = "a delay must be positive (" + std::to_string(delay.count()) + " ms)";
    return std::nullopt;
  }
  if (delay > kMaxDelay) {
    *error = "a delay of " + std::to_string(delay.count() / 1000) + " s is too long: " + delay_too_long_text();
    return std::nullopt;
  }
  DelayPlan plan;
  plan.units = static_cast<std::uint64_t>((delay.count() + kDelayUnit.count() - 1) / kDelayUnit.count());
  for (int level = kDelayLevels - 1; level >= 0; --level) {
    if (plan.units & (std::uint64_t{1} << level)) plan.levels.push_back(level);
  }
  return plan;
}

std::vector<std::pair<std::string, std::string>> delay_headers(const DelayPlan& plan, const DeferTarget& target) {
  std::vector<std::pair<std::string, std::string>> headers;
  for (int level : plan.levels) headers.emplace_back(delay_level_header(level), "1");
  headers.emplace_back(std::string(kDelayTargetHeader), std::string(target_kind_name(target.kind)));
  return headers;
}

std::string delay_entry_exchange(std::string_view prefix, const DelayPlan& plan) {
  return delay_level_name(prefix, plan.levels.front());
}

}  // namespace sbus
