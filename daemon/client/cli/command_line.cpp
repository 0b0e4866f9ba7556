#include "client/cli/command_line.hpp"

#include <boost/program_options.hpp>

#include <cmath>
#include <iostream>
#include <stdexcept>
#include <string_view>

#include "client/cli/usage.hpp"

namespace po = boost::program_options;

namespace sbus::cli {

po::options_description cli_options(CommandLine* into) {
  CommandLine& line = *into;
  po::options_description options("Options");
  auto add = options.add_options();
  add("config,c", po::value(&line.config_path), "take brokers, exchange and secret from this sbusd YAML file");
  add("broker,b", po::value(&line.brokers), "broker URI, amqp://user:pass@host:port/vhost; repeat to fail over");
  add("secret-file", po::value(&line.secret_file), "file holding the shared secret (mode 0600)");
  add("legacy-short-secret", po::bool_switch(&line.legacy_short_secret),
      "with --secret-file: accept a secret shorter than 16 bytes (a py-servicebus fleet that cannot rotate yet)");
  add("caller", po::value(&line.caller),
      "sign as this caller identity of the agents' `callers` (hmac-sha256-v2), with --key-file");
  add("key-file", po::value(&line.key_file), "with --caller: file holding the caller's key (mode 0600)");
  add("exchange", po::value(&line.exchange), "exchange (default py-servicebus)");
  add("token", po::value(&line.token_mode),
      "how to sign calls: compat (default), hmac-sha256 or hmac-sha256-v2 (also checks the replies' signatures)");
  add("error-queue", po::value(&line.error_queue), "for `errors`: the queue (default NODE.error)");
  add("tls-ca", po::value(&line.tls_ca), "amqps://: the CA file to trust (default: the system's store)");
  add("tls-cert", po::value(&line.tls_cert), "amqps://: client certificate, for mutual TLS");
  add("tls-key", po::value(&line.tls_key), "amqps://: client key, for mutual TLS");
  add("tls-insecure", po::bool_switch(&line.tls_insecure),
      "amqps://: do not verify the broker's certificate or host name (tests only)");
  add("timeout", po::value(&line.timeout_seconds),
      "seconds to wait for a reply (default 30); also the call's deadline, sent with it");
  add("ttl", po::value(&line.ttl),
      "for `send`: drop the message, not run, if it still waits this long (30s, 500ms; default: no deadline)");
  add("delay", po::value(&line.delay),
      "for `send` and `publish`: deliver no earlier than this from now (250ms, 90s, 2h, 1d, 1h30m; up to 497 days)");
  add("at", po::value(&line.at),
      "for `send` and `publish`: deliver no earlier than this RFC 3339 time (2026-12-24T18:00:00Z)");
  add("id", po::value(&line.id),
      "for `call`, `send` and `publish`: the message id, an idempotency key (sent twice, handled once; default: a "
      "fresh one)");
  add("retry", po::value(&line.retry),
      "retry a call this many times on the next broker when its connection fails (calls are not assumed idempotent: "
      "default 0)");
  add("smart-route", po::bool_switch(&line.smart_route),
      "PING the node through each broker first and use the first where it answers");
  add("wait", po::value(&line.wait_seconds), "for `discover`: seconds to collect the agents' answers (default 2)");
  add("ping", po::value(&line.ping_nodes)->multitoken(),
      "for `discover`: also PING these nodes (py-servicebus agents answer PING, not discovery)");
  add("json", po::bool_switch(&line.json),
      "print JSON: one document on stdout (JSON lines for a stream), errors as JSON lines on stderr");
  add("version,V", po::bool_switch(&line.version), "print the version and exit");
  add("help,h", po::bool_switch(&line.help), "print this help");
  return options;
}

std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  std::size_t used = 0;
  double number = 0;
  try {
    number = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const std::string unit = text.substr(used);
  double ms_per_unit = 0;
  if (unit == "ms") {
    ms_per_unit = 1;
  } else if (unit.empty() || unit == "s") {
    ms_per_unit = 1000;
  } else if (unit == "m") {
    ms_per_unit = 60 * 1000;
  } else if (unit == "h") {
    ms_per_unit = 3600 * 1000;
  } else {
    return std::nullopt;
  }
  const double ms = number * ms_per_unit;
  // No further ahead than an agent takes a deadline (a day, deadline.hpp).
  if (!std::isfinite(ms) || ms < 1 || ms > 24.0 * 3600 * 1000) return std::nullopt;
  return std::chrono::milliseconds(static_cast<long long>(ms));
}

bool asks_for_json(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--") return false;
    if (std::string_view(argv[i]) == "--json") return true;
  }
  return false;
}

std::optional<ExitCode> parse_command_line(int argc, const char* const* argv, CommandLine* line, const Output& output) {
  po::options_description hidden;
  auto add_hidden = hidden.add_options();
  add_hidden("command", po::value(&line->command));
  add_hidden("arguments", po::value(&line->words));
  po::options_description all;
  all.add(cli_options(line)).add(hidden);
  po::positional_options_description positional;
  positional.add("command", 1).add("arguments", -1);
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    output.fail(ExitCode::kUsage, "usage", e.what());
    output.note(usage_text() + options_text());
    return ExitCode::kUsage;
  }
  return std::nullopt;
}

}  // namespace sbus::cli
