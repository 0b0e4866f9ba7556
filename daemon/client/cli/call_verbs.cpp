// sbus call, send, publish and ping.
#include <rapidjson/document.h>

#include <sstream>

#include "client/cli/output.hpp"
#include "client/cli/runners.hpp"
#include "base/delay.hpp"

namespace sbus::cli {
namespace {

// False, said on stderr, when the params are not JSON: checked before any
// connection is made.
bool params_are_json(const std::string& params, const Output& out) {
  rapidjson::Document document;
  document.Parse(params.data(), params.size());
  if (!document.HasParseError()) return true;
  out.fail(ExitCode::kUsage, "usage", "params are not valid JSON: " + params);
  return false;
}

}  // namespace

ExitCode with_sender(const Invocation& invocation, const std::function<ExitCode(Sender&)>& body) {
  try {
    Sender sender(invocation.sender);
    return body(sender);
  } catch (const SenderError& e) {
    return invocation.out.fail(e);
  }
}

ExitCode run_call(const Invocation& invocation) {
  const Output& out = invocation.out;
  const std::string& address = invocation.operands[0];
  const std::string& params = invocation.operands[1];
  if (!params_are_json(params, out)) return ExitCode::kUsage;
  return with_sender(invocation, [&](Sender& sender) {
    CallOptions options;
    options.message_id = invocation.line.id;
    const CallResult result = sender.call(address, params, invocation.timeout, options);
    warn_dropped(sender, out);
    JsonObject about;
    about.text("address", address).text("id", result.id).text("broker", sender.connected_broker());
    if (!result.ok()) {
      return out.fail(ExitCode::kServiceError, result.error_code,
                      address + " failed: " + result.error_code + ": " + result.message, about);
    }
    // A py-servicebus service may answer any text: if it is not JSON, the
    // result is that text as a JSON string.
    JsonObject document;
    document.merge(about);
    document.json("result", result.message);
    out.result(document, result.message + "\n");
    return ExitCode::kOk;
  });
}

ExitCode run_send(const Invocation& invocation) {
  const std::string& address = invocation.operands[0];
  const std::string& params = invocation.operands[1];
  if (!params_are_json(params, invocation.out)) return ExitCode::kUsage;
  // Read and checked by run() before this (check_deferral in cli.cpp).
  SendOptions options;
  std::string error;
  if (!invocation.line.ttl.empty()) options.ttl = parse_duration(invocation.line.ttl);
  if (!invocation.line.delay.empty()) options.delay = parse_delay(invocation.line.delay, &error);
  if (!invocation.line.at.empty()) options.at = parse_rfc3339(invocation.line.at, &error);
  options.message_id = invocation.line.id;
  return with_sender(invocation, [&](Sender& sender) {
    sender.send(address, params, options);
    JsonObject document;
    document.text("address", address).flag("confirmed", true).text("broker", sender.connected_broker());
    if (options.ttl) document.integer("ttl_ms", options.ttl->count());
    if (!invocation.line.delay.empty()) document.text("delay", invocation.line.delay);
    if (!invocation.line.at.empty()) document.text("at", invocation.line.at);
    invocation.out.result(document, "");
    return ExitCode::kOk;
  });
}

// Nobody subscribed is no error (exit 0): the broker returned the event,
// which is said on stderr.
ExitCode run_publish(const Invocation& invocation) {
  const std::string& topic = invocation.operands[0];
  const std::string& params = invocation.operands[1];
  if (!params_are_json(params, invocation.out)) return ExitCode::kUsage;
  // Read and checked by run() before this (check_deferral in cli.cpp).
  SendOptions options;
  std::string error;
  if (!invocation.line.delay.empty()) options.delay = parse_delay(invocation.line.delay, &error);
  if (!invocation.line.at.empty()) options.at = parse_rfc3339(invocation.line.at, &error);
  options.message_id = invocation.line.id;
  return with_sender(invocation, [&](Sender& sender) {
    const bool subscribed = sender.publish(topic, params, options);
    if (!subscribed) {
      invocation.out.warn("nobody is subscribed to " + topic + " on " + sender.connected_broker() +
                          ": the event was not kept");
    }
    JsonObject document;
    document.text("topic", topic)
        .flag("confirmed", true)
        .flag("subscribed", subscribed)
        .text("broker", sender.connected_broker());
    invocation.out.result(document, "");
    return ExitCode::kOk;
  });
}

ExitCode run_ping(const Invocation& invocation) {
  const std::string& node = invocation.operands[0];
  return with_sender(invocation, [&](Sender& sender) {
    if (sender.ping(node, invocation.timeout)) {
      JsonObject document;
      document.text("node", node).flag("pong", true).text("broker", sender.connected_broker());
      invocation.out.result(document, "PONG from " + node + " via " + sender.connected_broker() + "\n");
      return ExitCode::kOk;
    }
    std::ostringstream seconds;
    seconds << invocation.line.timeout_seconds;
    return invocation.out.fail(ExitCode::kTimeout, "timeout",
                               "no answer from " + node + " within " + seconds.str() + " s",
                               JsonObject().text("node", node).text("broker", sender.connected_broker()));
  });
}

}  // namespace sbus::cli
