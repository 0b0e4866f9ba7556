#include "client/cli/sender_options.hpp"

#include <string>
#include <vector>

#include "base/broker_uri.hpp"
#include "base/caller_id.hpp"
#include "config/config.hpp"
#include "config/sender_options.hpp"

namespace sbus::cli {
namespace {

// Brokers, exchange, secret and TLS from the sbusd YAML file; --broker and
// --secret-file override the file's.
std::optional<ExitCode> from_config(const CommandLine& line, SenderOptions* options, const Output& output) {
  ConfigOverrides overrides;
  overrides.brokers = line.brokers;
  if (!line.secret_file.empty()) overrides.secret_file = line.secret_file;
  Config config;
  std::vector<std::string> problems;
  if (!load_config(line.config_path, overrides, &config, &problems)) {
    std::string message;
    for (const std::string& problem : problems) message += (message.empty() ? "" : "\n") + problem;
    return output.fail(ExitCode::kUsage, "config", message);
  }
  *options = sbus::sender_options_of(config);
  return std::nullopt;
}

// Brokers from --broker, the secret from --secret-file.
std::optional<ExitCode> from_flags(const CommandLine& line, const Verb& verb, SenderOptions* options,
                                   const Output& output) {
  if (line.brokers.empty()) {
    return output.fail(ExitCode::kUsage, "usage", "give --config FILE or at least one --broker URI");
  }
  for (const std::string& text : line.brokers) {
    BrokerUri uri;
    std::string error;
    if (!parse_broker_uri(text, &uri, &error)) {
      return output.fail(ExitCode::kUsage, "usage", "--broker " + text + ": " + error);
    }
  }
  options->brokers = line.brokers;
  if (line.secret_file.empty()) {
    if (verb.needs != Needs::kSecret || !line.caller.empty()) return std::nullopt;
    return output.fail(ExitCode::kUsage, "usage",
                       "give --secret-file (or --config) to sign " + std::string(verb.signs));
  }
  std::string error;
  if (!read_secret_file(line.secret_file, &options->secret, &error)) {
    return output.fail(ExitCode::kUsage, "secret", error);
  }
  if (const std::string problem = short_secret_problem(options->secret.size());
      !problem.empty() && !line.legacy_short_secret) {
    return output.fail(ExitCode::kUsage, "secret", line.secret_file + ": " + problem + " (--legacy-short-secret)");
  }
  return std::nullopt;
}

// --caller and --key-file: the caller's key under the key file rule.
std::optional<ExitCode> apply_caller(const CommandLine& line, SenderOptions* options, const Output& output) {
  if (line.caller.empty() != line.key_file.empty()) {
    return output.fail(ExitCode::kUsage, "usage", "--caller and --key-file go together");
  }
  if (line.caller.empty()) return std::nullopt;
  if (!valid_caller_id(line.caller) || line.caller == kSharedCaller) {
    return output.fail(ExitCode::kUsage, "usage",
                       "--caller '" + line.caller + "' is not a caller id (1 to " + std::to_string(kMaxCallerBytes) +
                           " characters of A-Z a-z 0-9 . _ @ -, not " + std::string(kSharedCaller) + ")");
  }
  if (!line.token_mode.empty() && line.token_mode != "hmac-sha256-v2") {
    return output.fail(ExitCode::kUsage, "usage", "--caller signs hmac-sha256-v2 tokens, not " + line.token_mode);
  }
  std::string error;
  if (!read_secret_file(line.key_file, &options->caller_key, &error)) {
    return output.fail(ExitCode::kUsage, "secret", "--key-file: " + error);
  }
  if (const std::string problem = short_secret_problem(options->caller_key.size()); !problem.empty()) {
    return output.fail(ExitCode::kUsage, "secret", "--key-file " + line.key_file + ": " + problem);
  }
  options->caller = line.caller;
  options->token = "hmac-sha256-v2";
  return std::nullopt;
}

// --exchange, --token, --tls-*, --retry and --smart-route over either.
std::optional<ExitCode> apply_overrides(const CommandLine& line, SenderOptions* options, const Output& output) {
  if (!line.exchange.empty()) options->exchange = line.exchange;
  if (!line.token_mode.empty()) {
    if (!valid_token_mode(line.token_mode)) {
      return output.fail(ExitCode::kUsage, "usage", "--token must be compat, hmac-sha256 or hmac-sha256-v2");
    }
    options->token = line.token_mode;
  }
  if (!line.tls_ca.empty()) options->tls_ca_file = line.tls_ca;
  if (!line.tls_cert.empty()) options->tls_cert_file = line.tls_cert;
  if (!line.tls_key.empty()) options->tls_key_file = line.tls_key;
  if (line.tls_insecure) options->tls_verify = false;
  if (options->tls_cert_file.empty() != options->tls_key_file.empty()) {
    return output.fail(ExitCode::kUsage, "usage", "--tls-cert and --tls-key go together");
  }
  if (line.retry < 0) {
    return output.fail(ExitCode::kUsage, "usage", "--retry must be 0 or more");
  }
  options->retry = line.retry;
  options->smart_route = line.smart_route;
  return std::nullopt;
}

}  // namespace

std::optional<ExitCode> build_sender_options(const CommandLine& line, const Verb& verb, SenderOptions* options,
                                             const Output& output) {
  const std::optional<ExitCode> failed =
      line.config_path.empty() ? from_flags(line, verb, options, output) : from_config(line, options, output);
  if (failed) return failed;
  if (const std::optional<ExitCode> bad = apply_overrides(line, options, output)) return bad;
  return apply_caller(line, options, output);
}

}  // namespace sbus::cli
