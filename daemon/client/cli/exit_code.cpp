#include "client/cli/exit_code.hpp"

#include <array>

namespace sbus::cli {
namespace {

constexpr std::array kExitCodes = {
    ExitCodeRow{ExitCode::kOk, "ok", "success"},
    ExitCodeRow{ExitCode::kServiceError, "service_error",
                "the service answered with an error (printed as CODE: message), or the broker refused a message"},
    ExitCodeRow{ExitCode::kUsage, "usage", "usage or config error"},
    ExitCodeRow{ExitCode::kTimeout, "timeout",
                "no answer within the timeout (default 30 s), also when the broker said it is blocked by a "
                "resource alarm (broker blocked: REASON)"},
    ExitCodeRow{ExitCode::kUnreachable, "unreachable",
                "no broker reachable (each broker's failure is listed) or connection lost"},
};

}  // namespace

std::span<const ExitCodeRow> exit_codes() {
  return kExitCodes;
}

ExitCode exit_code_for(const SenderError& error) {
  switch (error.kind()) {
    case SenderError::Kind::kAddress: return ExitCode::kUsage;
    // Blocked: the call was sent and may still run, as after a timeout.
    case SenderError::Kind::kTimeout:
    case SenderError::Kind::kBlocked: return ExitCode::kTimeout;
    case SenderError::Kind::kProtocol:
    case SenderError::Kind::kUnroutable:
    case SenderError::Kind::kPublish: return ExitCode::kServiceError;
    default: return ExitCode::kUnreachable;
  }
}

}  // namespace sbus::cli
