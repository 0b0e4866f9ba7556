#include "supervisor/rolling_replace.hpp"

namespace sbus {

ReplaceStep next_replace_step(const WorkerRecord* fresh, bool past_deadline) {
  if (fresh == nullptr || fresh->state == WorkerState::kFailed) return ReplaceStep::kRefuse;
  if (fresh->connected && fresh->state == WorkerState::kRunning) return ReplaceStep::kSwap;
  return past_deadline ? ReplaceStep::kSwapLate : ReplaceStep::kWait;
}

std::string replace_failure(const WorkerRecord* fresh) {
  if (fresh == nullptr) return {};
  std::string why = fresh->history.last_exit;
  for (const std::string& service : fresh->unavailable) why += (why.empty() ? "" : "; ") + service;
  return why;
}

}  // namespace sbus
