// sbus: call, send to and ping services on the bus from the command line.
//
//   sbus call NODE.CATEGORY.SERVICE 'JSON' [--timeout S] (--config FILE | --broker URI... --secret-file F)
//   sbus send NODE.CATEGORY.SERVICE 'JSON' ...
//   sbus ping NODE ...
//   sbus stats NODE ...
//
// Exit codes: 0 success, 1 the service answered with an error, 2 usage or
// config error, 3 timeout (also "broker blocked"), 4 no broker reachable or
// connection lost.
#include <boost/program_options.hpp>

#include <rapidjson/document.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <sbus/sender.hpp>

#include "base/broker_uri.hpp"
#include "config/config.hpp"
#include "config/sender_options.hpp"

namespace po = boost::program_options;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitServiceError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitTimeout = 3;
constexpr int kExitUnreachable = 4;

const char* kUsage =
    "Usage:\n"
    "  sbus help | --help | --version\n"
    "  sbus call NODE.CATEGORY.SERVICE 'JSON' [options]   call a service, print its result\n"
    "  sbus send NODE.CATEGORY.SERVICE 'JSON' [options]   send a message to a message service\n"
    "  sbus ping NODE [options]                           exit 0 when NODE answers\n"
    "  sbus stats NODE [options]                          what NODE's agent has served, per service\n"
    "  sbus errors list NODE [options]                    one line per message in NODE.error\n"
    "  sbus errors requeue NODE [options]                 move them back to NODE\n";

int exit_code_for(const sbus::SenderError& e) {
  switch (e.kind()) {
    case sbus::SenderError::Kind::kAddress: return kExitUsage;
    // Blocked: the call was sent and may still run, as after a timeout.
    case sbus::SenderError::Kind::kTimeout:
    case sbus::SenderError::Kind::kBlocked: return kExitTimeout;
    case sbus::SenderError::Kind::kProtocol:
    case sbus::SenderError::Kind::kUnroutable:
    case sbus::SenderError::Kind::kPublish: return kExitServiceError;
    default: return kExitUnreachable;
  }
}

// `text` with line breaks, tabs and backslashes escaped, so that it takes
// one line of output.
std::string one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      default: out += c;
    }
  }
  return out;
}

// The answer of NODE.sbus.stats as a table; false when it is not what
// sbusd answers.
bool print_stats(const std::string& json) {
  rapidjson::Document stats;
  stats.Parse(json.data(), json.size());
  if (stats.HasParseError() || !stats.IsObject() || !stats.HasMember("services") || !stats["services"].IsObject()) {
    return false;
  }
  const auto text = [&](const char* key) {
    return stats.HasMember(key) && stats[key].IsString() ? std::string(stats[key].GetString()) : std::string("?");
  };
  const auto number = [](const rapidjson::Value& object, const char* key) {
    return object.HasMember(key) && object[key].IsNumber() ? object[key].GetDouble() : 0.0;
  };
  std::printf("%s (pid %.0f) via %s: up %.0f s, connected %.0f s, %.0f reconnect(s), %.0f restart(s)",
              text("node").c_str(), number(stats, "pid"), text("broker").c_str(), number(stats, "uptime_s"),
              number(stats, "connected_s"), number(stats, "reconnects"), number(stats, "restarts"));
  // The counters below start from zero with each run of the worker.
  if (stats.HasMember("last_exit") && stats["last_exit"].IsString()) {
    std::printf("; the last run %s %.0f s ago: counters since then", one_line(stats["last_exit"].GetString()).c_str(),
                number(stats, "last_exit_s_ago"));
  }
  std::printf("\n");
  if (number(stats, "blocks") > 0) {
    const bool now = stats.HasMember("blocked") && stats["blocked"].IsBool() && stats["blocked"].GetBool();
    std::printf("blocked by the broker (resource alarm) %.0f time(s), %.1f s in all%s%s\n", number(stats, "blocks"),
                number(stats, "blocked_s"), now ? "; blocked now: " : "", now ? text("blocked_reason").c_str() : "");
  }
  if (stats.HasMember("other_agents") && stats["other_agents"].IsArray()) {
    const auto names = [](const rapidjson::Value& agent, const char* key) {
      std::string out;
      if (!agent.HasMember(key) || !agent[key].IsArray()) return out;
      for (const auto& name : agent[key].GetArray()) {
        if (name.IsString()) out += (out.empty() ? "" : ", ") + one_line(name.GetString());
      }
      return out.empty() ? std::string("-") : out;
    };
    for (const auto& agent : stats["other_agents"].GetArray()) {
      if (!agent.IsObject()) continue;
      const bool same = agent.HasMember("same_services") && agent["same_services"].IsBool() &&
                        agent["same_services"].GetBool();
      std::printf("another agent of this node: host %s pid %.0f, %s\n",
                  agent.HasMember("host") && agent["host"].IsString() ? one_line(agent["host"].GetString()).c_str() : "?",
                  number(agent, "pid"),
                  same ? "same services (they share the calls)"
                       : ("OTHER SERVICES: only there: " + names(agent, "only_there") +
                          "; only here: " + names(agent, "only_here"))
                             .c_str());
    }
  }
  std::printf("%-32s %-8s %10s %8s %10s %8s %7s\n", "SERVICE", "KIND", "HANDLED", "FAILED", "BUSY_S", "RUNNING",
              "QUEUED");
  for (const auto& service : stats["services"].GetObject()) {
    const rapidjson::Value& s = service.value;
    if (!s.IsObject()) return false;
    if (s.HasMember("unavailable") && s["unavailable"].IsString()) {
      std::printf("%-32s %-8s UNAVAILABLE: %s\n", service.name.GetString(),
                  s.HasMember("kind") && s["kind"].IsString() ? s["kind"].GetString() : "?",
                  one_line(s["unavailable"].GetString()).c_str());
      continue;
    }
    const bool running = s.HasMember("running") && s["running"].IsBool() && s["running"].GetBool();
    std::printf("%-32s %-8s %10.0f %8.0f %10.3f %8s %7.0f\n", service.name.GetString(),
                s.HasMember("kind") && s["kind"].IsString() ? s["kind"].GetString() : "?", number(s, "handled"),
                number(s, "failed"), number(s, "busy_s"), running ? "yes" : "no", number(s, "queued"));
  }
  // Deliveries that could not be handled (in the error queue), by code.
  if (stats.HasMember("refused_by_code") && stats["refused_by_code"].IsObject()) {
    std::printf("refused: %.0f", number(stats, "refused"));
    for (const auto& code : stats["refused_by_code"].GetObject()) {
      std::printf(" %s=%.0f", code.name.GetString(), code.value.IsNumber() ? code.value.GetDouble() : 0.0);
    }
    std::printf("\n");
  }
  return true;
}

// Forged replies are dropped, never printed; say how many there were.
void warn_dropped(const sbus::Sender& sender) {
  if (sender.dropped_replies() > 0) {
    std::cerr << "sbus: dropped " << sender.dropped_replies()
              << " reply(ies) that failed the hmac-sha256-v2 signature check\n";
  }
}

// NODE.sbus.stats through each broker in turn (a node's agent runs one
// worker per broker, each with its own counters); 0 when at least one
// answered.
int print_all_stats(const sbus::SenderOptions& options, const std::string& node, std::chrono::milliseconds timeout) {
  int code = kExitOk;
  std::size_t answered = 0;
  for (std::size_t i = 0; i < options.brokers.size(); ++i) {
    sbus::SenderOptions one = options;
    one.brokers = {options.brokers[i]};
    one.retry = 0;
    one.smart_route = false;
    if (i > 0) std::printf("\n");
    try {
      sbus::Sender sender(std::move(one));
      sbus::CallResult result = sender.call(node + ".sbus.stats", "[]", timeout);
      warn_dropped(sender);
      if (!result.ok()) {
        std::cerr << "sbus: " << node << ".sbus.stats via " << sender.connected_broker()
                  << " failed: " << result.error_code << ": " << result.message << "\n";
        code = kExitServiceError;
      } else if (!print_stats(result.message)) {
        std::cerr << "sbus: " << node << " answered sbus.stats with something else: " << result.message << "\n";
        code = kExitServiceError;
      } else {
        ++answered;
      }
    } catch (const sbus::SenderError& e) {
      std::cerr << "sbus: no stats through broker " << (i + 1) << " of " << options.brokers.size() << ": "
                << e.what() << "\n";
      code = exit_code_for(e);
    }
  }
  return answered > 0 ? kExitOk : code;
}

}  // namespace

int main(int argc, char** argv) {
  std::string command;
  std::vector<std::string> arguments;
  std::string config_path;
  std::vector<std::string> brokers;
  std::string secret_file;
  std::string exchange;
  std::string error_queue;
  std::string token_mode;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  double timeout_seconds = 30;
  int retry = 0;

  po::options_description options("Options");
  options.add_options()
      ("config,c", po::value(&config_path), "take brokers, exchange and secret from this sbusd YAML file")
      ("broker,b", po::value(&brokers), "broker URI, amqp://user:pass@host:port/vhost; repeat to fail over")
      ("secret-file", po::value(&secret_file), "file holding the shared secret (mode 0600)")
      ("legacy-short-secret", "with --secret-file: accept a secret shorter than 16 bytes (a py-servicebus fleet "
                              "that cannot rotate yet)")
      ("exchange", po::value(&exchange), "exchange (default py-servicebus)")
      ("token", po::value(&token_mode), "how to sign calls: compat (default), hmac-sha256 or hmac-sha256-v2 "
                                         "(also checks the replies' signatures)")
      ("error-queue", po::value(&error_queue), "for `errors`: the queue (default NODE.error)")
      ("tls-ca", po::value(&tls_ca), "amqps://: the CA file to trust (default: the system's store)")
      ("tls-cert", po::value(&tls_cert), "amqps://: client certificate, for mutual TLS")
      ("tls-key", po::value(&tls_key), "amqps://: client key, for mutual TLS")
      ("tls-insecure", "amqps://: do not verify the broker's certificate or host name (tests only)")
      ("timeout", po::value(&timeout_seconds), "seconds to wait for a reply (default 30)")
      ("retry", po::value(&retry), "retry a call this many times on the next broker when its connection fails "
                                   "(calls are not assumed idempotent: default 0)")
      ("smart-route", "PING the node through each broker first and use the first where it answers")
      ("version,V", "print the version and exit")
      ("help,h", "print this help");
  po::options_description hidden;
  hidden.add_options()
      ("command", po::value(&command))
      ("arguments", po::value(&arguments));
  po::options_description all;
  all.add(options).add(hidden);
  po::positional_options_description positional;
  positional.add("command", 1).add("arguments", -1);

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "sbus: " << e.what() << "\n" << kUsage << options;
    return kExitUsage;
  }
  if (vm.count("version")) {
    std::cout << "sbus " SBUS_VERSION "\n";
    return kExitOk;
  }
  if (vm.count("help") || command == "help") {
    std::cout << kUsage << options;
    return kExitOk;
  }
  if (command.empty()) {
    std::cerr << kUsage << options;
    return kExitUsage;
  }
  const bool node_only = command == "ping" || command == "stats";
  const std::size_t wanted = node_only ? 1 : 2;
  const bool errors_ok = command == "errors" && arguments.size() == 2 &&
                         (arguments[0] == "list" || arguments[0] == "requeue");
  if (command == "errors" && !errors_ok) {
    std::cerr << "sbus: expected errors list NODE or errors requeue NODE\n" << kUsage;
    return kExitUsage;
  }
  if ((command != "call" && command != "send" && command != "ping" && command != "stats" && command != "errors") ||
      (command != "errors" && arguments.size() != wanted)) {
    std::cerr << "sbus: expected "
              << (node_only ? command + " NODE" : command + " NODE.CATEGORY.SERVICE 'JSON'") << "\n"
              << kUsage;
    return kExitUsage;
  }
  if (!(timeout_seconds > 0) || !std::isfinite(timeout_seconds)) {
    std::cerr << "sbus: --timeout must be a positive number of seconds\n";
    return kExitUsage;
  }

  sbus::SenderOptions sender_options;
  if (!config_path.empty()) {
    sbus::ConfigOverrides overrides;
    overrides.brokers = brokers;
    if (!secret_file.empty()) overrides.secret_file = secret_file;
    sbus::Config config;
    std::vector<std::string> problems;
    if (!sbus::load_config(config_path, overrides, &config, &problems)) {
      for (const std::string& problem : problems) std::cerr << problem << "\n";
      return kExitUsage;
    }
    sender_options = sbus::sender_options_of(config);
  } else {
    if (brokers.empty()) {
      std::cerr << "sbus: give --config FILE or at least one --broker URI\n";
      return kExitUsage;
    }
    for (const std::string& text : brokers) {
      sbus::BrokerUri uri;
      std::string error;
      if (!sbus::parse_broker_uri(text, &uri, &error)) {
        std::cerr << "sbus: --broker " << text << ": " << error << "\n";
        return kExitUsage;
      }
    }
    sender_options.brokers = brokers;
    if (!secret_file.empty()) {
      std::string error;
      if (!sbus::read_secret_file(secret_file, &sender_options.secret, &error)) {
        std::cerr << "sbus: " << error << "\n";
        return kExitUsage;
      }
      if (const std::string problem = sbus::short_secret_problem(sender_options.secret.size());
          !problem.empty() && vm.count("legacy-short-secret") == 0) {
        std::cerr << "sbus: " << secret_file << ": " << problem << " (--legacy-short-secret)\n";
        return kExitUsage;
      }
    } else if (command != "ping" && !(command == "errors" && arguments[0] == "list")) {
      std::cerr << "sbus: give --secret-file (or --config) to sign "
                << (command == "errors" ? "the requeued messages" : "calls") << "\n";
      return kExitUsage;
    }
  }
  if (!exchange.empty()) sender_options.exchange = exchange;
  if (!token_mode.empty()) {
    if (!sbus::valid_token_mode(token_mode)) {
      std::cerr << "sbus: --token must be compat, hmac-sha256 or hmac-sha256-v2\n";
      return kExitUsage;
    }
    sender_options.token = token_mode;
  }
  if (!tls_ca.empty()) sender_options.tls_ca_file = tls_ca;
  if (!tls_cert.empty()) sender_options.tls_cert_file = tls_cert;
  if (!tls_key.empty()) sender_options.tls_key_file = tls_key;
  if (vm.count("tls-insecure")) sender_options.tls_verify = false;
  if (sender_options.tls_cert_file.empty() != sender_options.tls_key_file.empty()) {
    std::cerr << "sbus: --tls-cert and --tls-key go together\n";
    return kExitUsage;
  }
  if (retry < 0) {
    std::cerr << "sbus: --retry must be 0 or more\n";
    return kExitUsage;
  }
  sender_options.retry = retry;
  sender_options.smart_route = vm.count("smart-route") > 0;

  if (command == "call" || command == "send") {
    rapidjson::Document params;
    params.Parse(arguments[1].data(), arguments[1].size());
    if (params.HasParseError()) {
      std::cerr << "sbus: params are not valid JSON: " << arguments[1] << "\n";
      return kExitUsage;
    }
  }

  const auto timeout = std::chrono::milliseconds(static_cast<long long>(timeout_seconds * 1000));
  if (command == "stats") return print_all_stats(sender_options, arguments[0], timeout);
  try {
    sbus::Sender sender(std::move(sender_options));
    if (command == "ping") {
      if (sender.ping(arguments[0], timeout)) {
        std::cout << "PONG from " << arguments[0] << " via " << sender.connected_broker() << "\n";
        return kExitOk;
      }
      std::cerr << "sbus: no answer from " << arguments[0] << " within " << timeout_seconds << " s\n";
      return kExitTimeout;
    }
    if (command == "errors") {
      const std::string& node = arguments[1];
      if (arguments[0] == "requeue") {
        std::cout << "requeued " << sender.requeue_errors(node, error_queue) << " message(s) to " << node << "\n";
        return kExitOk;
      }
      // One line per message, for grep and wc -l; the count on stderr.
      std::vector<sbus::DeadLetter> letters = sender.list_errors(node, error_queue);
      for (const sbus::DeadLetter& letter : letters) {
        std::cout << one_line(letter.header("x-sbus-service")) << "\t" << one_line(letter.header("x-sbus-attempts"))
                  << " attempts\t" << one_line(letter.header("x-sbus-error")) << "\t" << one_line(letter.body) << "\n";
      }
      std::cerr << letters.size() << " message(s) in " << (error_queue.empty() ? node + ".error" : error_queue) << "\n";
      return kExitOk;
    }
    if (command == "send") {
      sender.send(arguments[0], arguments[1]);
      return kExitOk;
    }
    sbus::CallResult result = sender.call(arguments[0], arguments[1], timeout);
    warn_dropped(sender);
    if (!result.ok()) {
      std::cerr << "sbus: " << arguments[0] << " failed: " << result.error_code << ": " << result.message << "\n";
      return kExitServiceError;
    }
    std::cout << result.message << "\n";
    return kExitOk;
  } catch (const sbus::SenderError& e) {
    std::cerr << "sbus: " << e.what() << "\n";
    return exit_code_for(e);
  }
}
