// sbus call, send, publish and ping.
#include <rapidjson/document.h>

#include <iostream>

#include "client/cli/output.hpp"
#include "client/cli/runners.hpp"

namespace sbus::cli {
namespace {

// False, said on stderr, when the params are not JSON: checked before any
// connection is made.
bool params_are_json(const std::string& params) {
  rapidjson::Document document;
  document.Parse(params.data(), params.size());
  if (!document.HasParseError()) return true;
  std::cerr << "sbus: params are not valid JSON: " << params << "\n";
  return false;
}

}  // namespace

ExitCode with_sender(const Invocation& invocation, const std::function<ExitCode(Sender&)>& body) {
  try {
    Sender sender(invocation.sender);
    return body(sender);
  } catch (const SenderError& e) {
    std::cerr << "sbus: " << e.what() << "\n";
    return exit_code_for(e);
  }
}

ExitCode run_call(const Invocation& invocation) {
  const std::string& address = invocation.operands[0];
  const std::string& params = invocation.operands[1];
  if (!params_are_json(params)) return ExitCode::kUsage;
  return with_sender(invocation, [&](Sender& sender) {
    const CallResult result = sender.call(address, params, invocation.timeout);
    warn_dropped(sender);
    if (!result.ok()) {
      std::cerr << "sbus: " << address << " failed: " << result.error_code << ": " << result.message << "\n";
      return ExitCode::kServiceError;
    }
    std::cout << result.message << "\n";
    return ExitCode::kOk;
  });
}

ExitCode run_send(const Invocation& invocation) {
  const std::string& address = invocation.operands[0];
  const std::string& params = invocation.operands[1];
  if (!params_are_json(params)) return ExitCode::kUsage;
  return with_sender(invocation, [&](Sender& sender) {
    if (invocation.line.ttl.empty()) {
      sender.send(address, params);
    } else {
      sender.send(address, params, *parse_duration(invocation.line.ttl));
    }
    return ExitCode::kOk;
  });
}

// Nobody subscribed is no error (exit 0): the broker returned the event,
// which is said on stderr.
ExitCode run_publish(const Invocation& invocation) {
  const std::string& topic = invocation.operands[0];
  const std::string& params = invocation.operands[1];
  if (!params_are_json(params)) return ExitCode::kUsage;
  return with_sender(invocation, [&](Sender& sender) {
    if (!sender.publish(topic, params)) {
      std::cerr << "sbus: nobody is subscribed to " << topic << " on " << sender.connected_broker()
                << ": the event was not kept\n";
    }
    return ExitCode::kOk;
  });
}

ExitCode run_ping(const Invocation& invocation) {
  const std::string& node = invocation.operands[0];
  return with_sender(invocation, [&](Sender& sender) {
    if (sender.ping(node, invocation.timeout)) {
      std::cout << "PONG from " << node << " via " << sender.connected_broker() << "\n";
      return ExitCode::kOk;
    }
    std::cerr << "sbus: no answer from " << node << " within " << invocation.line.timeout_seconds << " s\n";
    return ExitCode::kTimeout;
  });
}

}  // namespace sbus::cli
