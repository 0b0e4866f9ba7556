#include "client/cli/exit_code.hpp"

#include <array>

namespace sbus::cli {
namespace {

constexpr std::array kExitCodes = {
    ExitCodeRow{.code = ExitCode::kOk, .name = "ok", .meaning = "success"},
    ExitCodeRow{
        .code = ExitCode::kServiceError,
        .name = "service_error",
        .meaning = "the service answered with an error (printed as CODE: message), the broker refused a message, or it "
                   "has no queue for the node (call, ping, send: no such node)"},
    ExitCodeRow{.code = ExitCode::kUsage, .name = "usage", .meaning = "usage or config error"},
    ExitCodeRow{.code = ExitCode::kTimeout,
                .name = "timeout",
                .meaning = "no answer within the timeout (default 30 s), also when the broker said it is blocked by a "
                           "resource alarm (broker blocked: REASON)"},
    ExitCodeRow{.code = ExitCode::kUnreachable,
                .name = "unreachable",
                .meaning = "no broker reachable (each broker's failure is listed) or connection lost"},
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

std::string_view exit_code_name(ExitCode code) {
  for (const ExitCodeRow& row : kExitCodes) {
    if (row.code == code) return row.name;
  }
  return "?";
}

std::string_view code_for(const SenderError& error) {
  switch (error.kind()) {
    case SenderError::Kind::kAddress: return "address";
    case SenderError::Kind::kConnect: return "connect";
    case SenderError::Kind::kPublish: return "publish";
    case SenderError::Kind::kUnroutable: return "unroutable";
    case SenderError::Kind::kTimeout: return "timeout";
    case SenderError::Kind::kConnectionLost: return "connection_lost";
    case SenderError::Kind::kProtocol: return "protocol";
    case SenderError::Kind::kBlocked: return "blocked";
  }
  return "sender";
}

}  // namespace sbus::cli
