#include "config/config_keys.hpp"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "base/topic.hpp"

namespace sbus {
namespace {

namespace fs = std::filesystem;

// The member a row reads and compares, reached through a path of member
// pointers: field<&Config::tls, &TlsOptions::verify>(config).
template <auto First, auto... Rest, typename Target>
auto& field(Target& target) {
  if constexpr (sizeof...(Rest) == 0) {
    return target.*First;
  } else {
    return field<Rest...>(target.*First);
  }
}

// The struct a path of member pointers starts from.
template <typename Class, typename Member>
Class owner_of(Member Class::*);
template <auto First, auto... Rest>
struct Owner {
  using type = decltype(owner_of(First));
};
template <auto... Path>
using OwnerOf = typename Owner<Path...>::type;

template <auto... Path, typename Target>
bool differs(const Target& a, const Target& b) {
  return field<Path...>(a) != field<Path...>(b);
}

template <auto... Path, typename Target>
void parse_string(const YAML::Node& value, const std::string& key, Target& out, Loading& at) {
  at.checker.scalar(value, key, &field<Path...>(out));
}

// Relative to the config file's folder.
template <auto... Path, typename Target>
void parse_path(const YAML::Node& value, const std::string& key, Target& out, Loading& at) {
  std::string& path = field<Path...>(out);
  if (at.checker.scalar(value, key, &path)) path = at.resolve(path);
}

template <long long Min, long long Max, auto... Path, typename Target>
void parse_integer(const YAML::Node& value, const std::string& key, Target& out, Loading& at) {
  at.checker.integer(value, key, Min, Max, &field<Path...>(out));
}

template <int Max, auto... Path, typename Target>
void parse_seconds(const YAML::Node& value, const std::string& key, Target& out, Loading& at) {
  at.checker.seconds(value, key, Max, &field<Path...>(out));
}

template <auto... Path, typename Target>
void parse_boolean(const YAML::Node& value, const std::string& key, Target& out, Loading& at) {
  at.checker.boolean(value, key, &field<Path...>(out));
}

// The readers of the common types: one member, read and compared.
template <auto... Path>
constexpr auto string_value() {
  return ValueReader<OwnerOf<Path...>>{&parse_string<Path...>, &differs<Path...>, "string"};
}
template <auto... Path>
constexpr auto path_value() {
  return ValueReader<OwnerOf<Path...>>{&parse_path<Path...>, &differs<Path...>, "path"};
}
template <long long Min, long long Max, auto... Path>
constexpr auto integer_value() {
  return ValueReader<OwnerOf<Path...>>{&parse_integer<Min, Max, Path...>, &differs<Path...>, "integer"};
}
template <int Max, auto... Path>
constexpr auto seconds_value() {
  return ValueReader<OwnerOf<Path...>>{&parse_seconds<Max, Path...>, &differs<Path...>, "seconds"};
}
template <auto... Path>
constexpr auto boolean_value() {
  return ValueReader<OwnerOf<Path...>>{&parse_boolean<Path...>, &differs<Path...>, "boolean"};
}

// The reader of a key with a parser of its own.
template <typename Target>
constexpr ValueReader<Target> with_parser(void (*parse)(const YAML::Node&, const std::string&, Target&, Loading&),
                                          bool (*differs)(const Target&, const Target&), const char* type) {
  return {parse, differs, type};
}

// The reader of a key that a rule after the rows reads together with
// others (the secret's three sources): only compared.
template <auto... Path>
constexpr auto read_by_rule(const char* type) {
  return ValueReader<OwnerOf<Path...>>{nullptr, &differs<Path...>, type};
}

void parse_node(const YAML::Node& value, const std::string& key, Config& out, Loading& at) {
  if (at.checker.scalar(value, key, &out.node) && !valid_name_part(out.node)) {
    at.checker.problem(value, key, "'" + out.node + "' is not a valid node name (no dots)");
  }
}

// --broker replaces the list without reading it (load_config_text).
void parse_brokers(const YAML::Node& list, const std::string& key, Config& out, Loading& at) {
  if (!at.overrides.brokers.empty()) return;
  if (!list.IsSequence() || list.size() == 0) {
    at.checker.problem(list, key, "must be a non-empty list of amqp:// URIs");
    return;
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const YAML::Node item = list[i];
    const std::string item_key = key + "[" + std::to_string(i) + "]";
    std::string uri_text;
    if (!at.checker.scalar(item, item_key, &uri_text)) continue;
    BrokerUri uri;
    std::string error;
    if (!parse_broker_uri(uri_text, &uri, &error)) {
      at.checker.problem(item, item_key, error);
    } else if (!seen.insert(uri.redacted()).second) {
      at.checker.problem(item, item_key, "duplicate broker " + uri.redacted());
    } else {
      out.brokers.push_back(uri_text);
      out.broker_uris.push_back(uri);
    }
  }
}

// --plugin-dir wins (set before the rows); an empty value keeps the default.
void parse_plugin_dir(const YAML::Node& value, const std::string& key, Config& out, Loading& at) {
  std::string dir;
  if (at.checker.scalar(value, key, &dir) && !at.overrides.plugin_dir && !at.resolve(dir).empty()) {
    out.plugin_dir = at.resolve(dir);
  }
}

void parse_token_mode(const YAML::Node& value, const std::string& key, std::string* out, Loading& at) {
  if (at.checker.scalar(value, key, out) && !valid_token_mode(*out)) {
    at.checker.problem(value, key, "must be compat, hmac-sha256 or hmac-sha256-v2, not '" + *out + "'");
  }
}

void parse_token(const YAML::Node& value, const std::string& key, Config& out, Loading& at) {
  parse_token_mode(value, key, &out.token, at);
}

void parse_accept(const YAML::Node& list, const std::string& key, Config& out, Loading& at) {
  if (!list.IsSequence() || list.size() == 0) {
    at.checker.problem(list, key, "must be a list of token modes: [compat, hmac-sha256, hmac-sha256-v2]");
    return;
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    std::string mode;
    parse_token_mode(list[i], key + "[" + std::to_string(i) + "]", &mode, at);
    out.accept.push_back(mode);
  }
}

void parse_state_dir(const YAML::Node& value, const std::string& key, Config& out, Loading& at) {
  parse_path<&Config::state_dir>(value, key, out, at);
  if (out.state_dir.empty()) at.checker.problem(value, key, "must not be empty");
}

void parse_queue_type(const YAML::Node& value, const std::string& key, Config& out, Loading& at) {
  if (at.checker.scalar(value, key, &out.queue_type) && out.queue_type != "classic" && out.queue_type != "quorum") {
    at.checker.problem(value, key, "must be classic or quorum, not '" + out.queue_type + "'");
  }
}

void parse_hold_time(const YAML::Node& value, const std::string& key, Config& out, Loading& at) {
  if (at.checker.seconds(value, key, 3600, &out.hold_ms) && out.hold_ms < 100) {
    at.checker.problem(value, key, "must be at least 0.1 s");
  }
}

// --log-level wins (set before the rows); the file's value is still checked.
void parse_log_level(const YAML::Node& value, const std::string& key, Config& out, Loading& at) {
  std::string name;
  LogLevel level = LogLevel::kInfo;
  if (!at.checker.scalar(value, key, &name)) return;
  if (!parse_log_level(name, &level)) {
    at.checker.problem(value, key, "must be debug, info, warn or error");
  } else if (!at.overrides.log_level) {
    out.log_level = level;
  }
}

void parse_log_format(const YAML::Node& value, const std::string& key, Config& out, Loading& at) {
  std::string name;
  if (!at.checker.scalar(value, key, &name)) return;
  if (!parse_log_format(name, &out.log_format)) at.checker.problem(value, key, "must be auto, text or json");
}

void parse_events_exchange(const YAML::Node& value, const std::string& key, Config& out, Loading& at) {
  if (!at.checker.scalar(value, key, &out.events_exchange)) return;
  if (out.events_exchange.empty() || out.events_exchange.rfind("amq.", 0) == 0) {
    at.checker.problem(value, key, "must be a name of sbus's own (not empty, not amq.*)");
  } else if (out.events_exchange == out.exchange) {
    at.checker.problem(value, key, "must differ from exchange (a direct exchange of py-servicebus)");
  }
}

void parse_services(const YAML::Node& list, const std::string& key, Config& out, Loading& at);
bool services_differ(const Config& a, const Config& b);

// Each top-level key. Descriptions are plain text: the reference adds the
// links.
constexpr ConfigKey kConfigKeys[] = {
    {"node", with_parser(&parse_node, &differs<&Config::node>, "string"), Restart::kWorkers, "host name",
     "the agent's name: its queue, and `NODE` in `NODE.CATEGORY.SERVICE`", "other-node"},
    {"brokers", with_parser(&parse_brokers, &differs<&Config::brokers>, "list"), Restart::kNone, "(required)",
     "list of `amqp://USER:PASS@HOST:PORT/VHOST` (`%2f` is `/`); one worker per entry", "[amqp://10.0.0.9/]"},
    {"exchange", string_value<&Config::exchange>(), Restart::kWorkers, "`py-servicebus`",
     "the direct exchange shared with py-servicebus peers", "other-exchange"},
    {"events_exchange", with_parser(&parse_events_exchange, &differs<&Config::events_exchange>, "string"),
     Restart::kWorkers, "`sbus.events`", "the durable topic exchange events are published to, declared by sbusd",
     "other.events"},
    // The first given of secret_file, secret_env and secret wins (read_secret
    // in config.cpp).
    {"secret_file", read_by_rule<&Config::secret>("path"), Restart::kWorkers, "",
     "file with the shared secret (at least 16 bytes)", "secret"},
    {"secret", read_by_rule<&Config::secret>("string"), Restart::kWorkers, "",
     "the secret inline, for tests (`secret_file` wins)", "another secret, 16 bytes or more"},
    {"secret_env", read_by_rule<&Config::secret>("string"), Restart::kWorkers, "",
     "the name of an environment variable holding the secret (never a command line)", "SBUS_SECRET"},
    {"token", with_parser(&parse_token, &differs<&Config::token>, "string"), Restart::kWorkers, "`compat`",
     "how calls made from here are signed", "hmac-sha256-v2"},
    {"accept", with_parser(&parse_accept, &differs<&Config::accept>, "list"), Restart::kWorkers, "[`token`]",
     "the token modes sbusd accepts", "[compat, hmac-sha256-v2]"},
    {"max_skew", integer_value<1, 86400, &Config::max_skew_seconds>(), Restart::kWorkers, "60",
     "seconds an hmac call's timestamp may differ from the agent's clock", "30"},
    {"legacy_short_secret", boolean_value<&Config::legacy_short_secret>(), Restart::kNone, "`false`",
     "accept a secret shorter than 16 bytes", "true"},
    {"state_dir", with_parser(&parse_state_dir, &differs<&Config::state_dir>, "path"), Restart::kWorkers,
     "`/var/lib/sbus`",
     "where the nonces of hmac calls, the handled message ids and the crash journal are kept across restarts",
     "/tmp/sbus-state"},
    {"handled_keep", integer_value<1, 366LL * 86400, &Config::handled_keep_seconds>(), Restart::kWorkers,
     "604800 (7 days)", "seconds a handled message id (and a call's reply) is remembered", "3600"},
    {"handled_max_ids", integer_value<1, 1LL << 32, &Config::handled_max_ids>(), Restart::kWorkers, "1000000",
     "handled message ids remembered at most (the oldest are forgotten first)", "5000"},
    {"handled_reply_max_bytes", integer_value<0, 16LL << 20, &Config::handled_reply_max_bytes>(), Restart::kWorkers,
     "65536", "a call's reply up to this size is kept with its id, to answer a repeated call", "1024"},
    {"handled_max_bytes", integer_value<1LL << 20, 1LL << 40, &Config::handled_max_bytes>(), Restart::kWorkers, "1 GiB",
     "the store of handled ids never grows past this (when full, the oldest eighth is forgotten)", "16777216"},
    {"handled_commit_ms", integer_value<0, 10000, &Config::handled_commit_ms>(), Restart::kWorkers, "5",
     "milliseconds a handled id's record may wait after its ack, to be committed with others (0: each is committed "
     "before its ack)",
     "0"},
    // Keys are compared by their contents: a key file rewritten in place
    // (a rotation) replaces the workers on SIGHUP like a changed path.
    {"callers", with_parser(&parse_callers, &differs<&Config::callers>, "list"), Restart::kWorkers, "",
     "caller identities with keys of their own: `{id: NAME, key_file: FILE}`, `key_files: [OLD, NEW]` during a "
     "rotation",
     "[{id: billing, key_file: secret}]"},
    {"policy", with_parser(&parse_policy, &policy_differs, "list"), Restart::kWorkers,
     "(none: every valid caller "
     "may call everything)",
     "rules `- allow: {callers: [GLOB...], services: [GLOB...], kinds: [call, message, event]}` or `- deny: {...}`",
     "[{allow: {callers: ['*'], services: ['*']}}]"},
    {"identity", with_parser(&parse_identity, &identity_differs, "map"), Restart::kWorkers, "(none: the shared secret)",
     "`{id: NAME, key_file: FILE}`: the caller the node's own calls (its plugins' senders) sign hmac-sha256-v2 "
     "tokens as",
     "{id: other-node, key_file: secret}"},
    {"tls.ca_file", path_value<&Config::tls, &TlsOptions::ca_file>(), Restart::kWorkers, "(the system store)",
     "for `amqps://` brokers, the workers' and the plugins' calls alike: the CA certificates", "ca.pem"},
    {"tls.cert_file", path_value<&Config::tls, &TlsOptions::cert_file>(), Restart::kWorkers, "",
     "the client certificate, for mutual TLS (with `key_file`)", "other.pem"},
    {"tls.key_file", path_value<&Config::tls, &TlsOptions::key_file>(), Restart::kWorkers, "",
     "the client certificate's key (with `cert_file`)", "other.key"},
    {"tls.verify", boolean_value<&Config::tls, &TlsOptions::verify>(), Restart::kWorkers, "`true`",
     "check the broker's certificate", "false"},
    {"plugin_dir", with_parser(&parse_plugin_dir, &differs<&Config::plugin_dir>, "path"), Restart::kWorkers,
     "`PREFIX/lib/sbus/plugins`", "where `plugin: NAME` finds `NAME.so`", "/opt/sbus/plugins"},
    {"prefetch", integer_value<1, 65535, &Config::prefetch>(), Restart::kWorkers, "64",
     "unacknowledged deliveries a worker's services hold", "8"},
    {"max_message_bytes", integer_value<64, 1LL << 30, &Config::max_message_bytes>(), Restart::kWorkers, "1048576",
     "larger calls get a `message_too_large` error reply", "4096"},
    {"heartbeat", integer_value<0, 3600, &Config::heartbeat_seconds>(), Restart::kWorkers, "10",
     "AMQP heartbeat, seconds", "30"},
    {"ping_interval", seconds_value<3600, &Config::ping_interval_ms>(), Restart::kWorkers, "2",
     "the ping watcher: seconds between probes through the broker (0: off)", "0.5"},
    {"ping_timeout", seconds_value<600, &Config::ping_timeout_ms>(), Restart::kWorkers, "3",
     "seconds a probe may take before the worker drops the connection and reconnects", "1.5"},
    {"queue_type", with_parser(&parse_queue_type, &differs<&Config::queue_type>, "string"), Restart::kWorkers,
     "`classic`", "`classic` (as py-servicebus declares it) or `quorum`", "quorum"},
    {"max_retries", integer_value<0, 1000, &Config::max_retries>(), Restart::kWorkers, "5",
     "a message whose `on_message` throws, or that crashes its worker, is retried", "2"},
    {"error_queue", string_value<&Config::error_queue>(), Restart::kWorkers, "`NODE.error`",
     "durable, bounded queue of failed messages and of deliveries that could not be handled", "dead"},
    {"error_queue_max_length", integer_value<1, 1LL << 31, &Config::error_queue_max_length>(), Restart::kWorkers,
     "10000", "the error queue's bound in messages (oldest dropped)", "7"},
    {"error_queue_max_bytes", integer_value<1024, 1LL << 40, &Config::error_queue_max_bytes>(), Restart::kWorkers,
     "64 MiB", "the error queue's bound in bytes (oldest dropped)", "2048"},
    {"queue_bytes", integer_value<1024, 1LL << 40, &Config::queue_bytes>(), Restart::kWorkers, "16 MiB",
     "each service's default `queue_bytes`", "4096"},
    {"hold_time", with_parser(&parse_hold_time, &differs<&Config::hold_ms>, "seconds"), Restart::kWorkers, "5",
     "seconds a message past its service's limits waits in `NODE.hold` before it comes back", "0.5"},
    {"delay_exchange", string_value<&Config::delay_exchange>(), Restart::kWorkers, "`sbus.delay`",
     "the prefix of deferred delivery's exchanges and queues, which sbusd declares", "acme.later"},
    {"default_call_timeout", seconds_value<86400, &Config::default_call_timeout_ms>(), Restart::kWorkers, "none",
     "seconds a call that carries no deadline may wait before it starts, from when the worker reads it (0: none)",
     "30"},
    {"crash_limit", integer_value<0, 1000, &Config::crash_limit>(), Restart::kWorkers, "3",
     "crashes of the worker within `crash_cooldown` that switch a service off (0: never)", "1"},
    {"crash_cooldown", integer_value<1, 86400, &Config::crash_cooldown_seconds>(), Restart::kWorkers, "60",
     "seconds a service that crashed `crash_limit` times is switched off for", "10"},
    {"drain_timeout", integer_value<0, 3600, &Config::drain_timeout_seconds>(), Restart::kWorkers, "30",
     "seconds a stopping worker waits for calls in progress", "5"},
    {"log_level", with_parser(&parse_log_level, &differs<&Config::log_level>, "string"), Restart::kWorkers, "`info`",
     "`debug`, `info`, `warn`, `error`", "debug"},
    {"log_format", with_parser(&parse_log_format, &differs<&Config::log_format>, "string"), Restart::kWorkers, "`auto`",
     "`text`, `json` (one JSON object a line) or `auto`: native journal entries when stderr is the journal, "
     "else text",
     "json"},
    {"log_file", path_value<&Config::log_file>(), Restart::kNone, "(stderr)",
     "a file the supervisor writes for all processes, rotated by size; read at start only", "sbusd.log"},
    {"log_max_bytes", integer_value<4096, 1LL << 40, &Config::log_max_bytes>(), Restart::kNone, "10 MiB",
     "the size at which `log_file` is rotated", "4096"},
    {"log_keep", integer_value<0, 100, &Config::log_keep>(), Restart::kNone, "5",
     "rotated files kept: `FILE.1` ... `FILE.5`", "2"},
    {"metrics_listen", string_value<&Config::metrics_listen>(), Restart::kNone, "(off)",
     "`HOST:PORT` or a Unix socket path where `/metrics`, `/healthz` and `/readyz` are served over HTTP "
     "([metrics.md](metrics.md)); read at start only",
     "127.0.0.1:9464"},
    {"services", with_parser(&parse_services, &services_differ, "list"), Restart::kWorkers, "",
     "list of services, below", "[{name: test.echo, plugin: test}]"},
};

void parse_service_name(const YAML::Node& value, const std::string& key, ServiceConfig& out, Loading& at) {
  if (!at.checker.scalar(value, key, &out.name)) return;
  const std::size_t dot = out.name.find('.');
  out.category = out.name.substr(0, dot);
  out.service = dot == std::string::npos ? "" : out.name.substr(dot + 1);
  if (dot == std::string::npos || !valid_name_part(out.category) || !valid_name_part(out.service)) {
    at.checker.problem(value, key, "'" + out.name + "' is not CATEGORY.SERVICE");
  } else if (out.category == kOwnCategory) {
    at.checker.problem(
        value, key,
        "the category '" + std::string(kOwnCategory) + "' is sbusd's own (" + std::string(kOwnCategory) + ".stats)");
  } else if (!at.service_names.insert(out.name).second) {
    at.checker.problem(value, key, "duplicate service '" + out.name + "'");
  }
}

// A name is plugin_dir/NAME.so; a path (a slash, or .so at the end) is taken
// from the config file's folder.
void parse_plugin(const YAML::Node& value, const std::string& key, ServiceConfig& out, Loading& at) {
  if (!at.checker.scalar(value, key, &out.plugin)) return;
  const bool is_path = out.plugin.find('/') != std::string::npos || out.plugin.ends_with(".so");
  out.plugin_path = is_path ? at.resolve(out.plugin) : (fs::path(at.config.plugin_dir) / (out.plugin + ".so")).string();
}

void parse_kind(const YAML::Node& value, const std::string& key, ServiceConfig& out, Loading& at) {
  std::string kind;
  if (!at.checker.scalar(value, key, &kind)) return;
  if (kind == "rpc") {
    out.kind = ServiceKind::kRpc;
  } else if (kind == "message") {
    out.kind = ServiceKind::kMessage;
  } else if (kind == "event") {
    out.kind = ServiceKind::kEvent;
  } else {
    at.checker.problem(value, key, "must be rpc or message, not '" + kind + "' (or event, for an event service)");
  }
}

void parse_options(const YAML::Node& map, const std::string& key, ServiceConfig& out, Loading& at) {
  if (!map.IsMap()) {
    at.checker.problem(map, key, "must be a map of names to values");
    return;
  }
  for (const auto& option : map) {
    std::string value;
    if (at.checker.scalar(option.second, key + "." + option.first.Scalar(), &value)) {
      out.options[option.first.Scalar()] = value;
    }
  }
}

// Each pattern is named by its own line, as RabbitMQ would route it.
void parse_topics(const YAML::Node& list, const std::string& key, ServiceConfig& out, Loading& at) {
  if (!list.IsSequence() || list.size() == 0) {
    at.checker.problem(list, key, "must be a non-empty list of topic patterns, e.g. [\"orders.*\", \"audit.#\"]");
    return;
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string item_key = key + "[" + std::to_string(i) + "]";
    std::string pattern;
    if (!at.checker.scalar(list[i], item_key, &pattern)) continue;
    if (const std::string problem = topic_pattern_problem(pattern); !problem.empty()) {
      at.checker.problem(list[i], item_key, problem);
    } else if (std::find(out.topics.begin(), out.topics.end(), pattern) == out.topics.end()) {
      out.topics.push_back(pattern);
    }
  }
}

void parse_group(const YAML::Node& value, const std::string& key, ServiceConfig& out, Loading& at) {
  if (at.checker.scalar(value, key, &out.group) && !valid_name_part(out.group)) {
    at.checker.problem(value, key, "'" + out.group + "' is not a valid group name (not empty, no dots)");
  }
}

// memory_limit: bytes, or a number with K, M or G (binary units): 256M.
void parse_memory_limit(const YAML::Node& value, const std::string& key, ServiceConfig& out, Loading& at) {
  std::string text;
  if (!at.checker.scalar(value, key, &text)) return;
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const std::string unit = text.substr(digits);
  const int shift = unit.empty() ? 0 : unit == "K" ? 10 : unit == "M" ? 20 : unit == "G" ? 30 : -1;
  constexpr std::uint64_t kMin = 1 << 20;
  constexpr std::uint64_t kMax = 1ULL << 40;
  std::uint64_t number = 0;
  if (digits == 0 || digits > 13 || shift < 0 || (number = std::stoull(text.substr(0, digits)) << shift) < kMin ||
      number > kMax) {
    at.checker.problem(value, key,
                       "'" + text + "' is not a memory size from 1M to 1024G (bytes, or a number with K, M or G)");
    return;
  }
  out.memory_limit = number;
}

// The keys of each service. A plugin is compared by the file it resolves to
// (its contents are compared by the supervisor).
constexpr ServiceKey kServiceKeys[] = {
    {"name", with_parser(&parse_service_name, &differs<&ServiceConfig::name>, "string"), Restart::kWorkers,
     "(required)", "`CATEGORY.SERVICE`, unique; the category `sbus` is sbusd's own (`sbus.stats`)", "math.sub"},
    {"plugin", with_parser(&parse_plugin, &differs<&ServiceConfig::plugin_path>, "string"), Restart::kWorkers,
     "(required)", "a plugin name (`plugin_dir/NAME.so`) or a path to a `.so`", "other"},
    {"kind", with_parser(&parse_kind, &differs<&ServiceConfig::kind>, "string"), Restart::kWorkers, "`rpc`",
     "`rpc` answers calls (`on_call`); `message` takes fire-and-forget messages (`on_message`); `event` takes the "
     "events of its `topics` (`on_event`)",
     "message"},
    {"queue_len", integer_value<1, 1000000, &ServiceConfig::queue_len>(), Restart::kWorkers, "100",
     "calls or messages waiting for the service's thread", "5"},
    {"queue_bytes", integer_value<1024, 1LL << 40, &ServiceConfig::queue_bytes>(), Restart::kWorkers,
     "`queue_bytes` above", "bytes the calls and messages waiting for the service may hold", "100000"},
    {"export", string_value<&ServiceConfig::export_name>(), Restart::kWorkers, "the `SERVICE` part",
     "the service's name inside the plugin, if it differs", "sum"},
    {"idempotent", boolean_value<&ServiceConfig::idempotent>(), Restart::kWorkers, "`false`",
     "RPC: a call whose worker died running it is run again (at most `max_retries` times)", "true"},
    {"options", with_parser(&parse_options, &differs<&ServiceConfig::options>, "map"), Restart::kWorkers, "",
     "a map of strings handed to the service's `start()`", "{mode: fast}"},
    {"audit", boolean_value<&ServiceConfig::audit>(), Restart::kWorkers, "`false`",
     "every call and message to the service is written to the audit log, allowed or denied", "true"},
    {"topics", with_parser(&parse_topics, &differs<&ServiceConfig::topics>, "list"), Restart::kWorkers,
     "(required for events)", "events: the topic patterns it subscribes to", "[\"orders.*\", \"audit.#\"]"},
    {"group", with_parser(&parse_group, &differs<&ServiceConfig::group>, "string"), Restart::kWorkers,
     "(none: every node)", "events: the group whose services share one queue", "billing"},
    {"isolate", boolean_value<&ServiceConfig::isolate>(), Restart::kWorkers, "`false`",
     "the service runs in a process of its own per broker: its crash, hang or leak costs no other service a call",
     "true"},
    {"memory_limit", with_parser(&parse_memory_limit, &differs<&ServiceConfig::memory_limit>, "size"),
     Restart::kWorkers, "(none)", "isolated services: the RSS (`256M`, `1G`) past which its process is restarted",
     "256M"},
};

// A row that does not say what a change does fails to compile here. (That
// each row can compare its value is checked by tests/unit/config_keys_test:
// a function pointer's comparison is not a constant expression under the
// sanitizers.)
template <typename Target>
constexpr bool decided(const KeyRow<Target>& row) {
  return row.restart == Restart::kWorkers || row.restart == Restart::kNone;
}
static_assert(std::ranges::all_of(kConfigKeys, decided<Config>));
static_assert(std::ranges::all_of(kServiceKeys, decided<ServiceConfig>));

// The names a map may hold: the first part of each row's name for the top
// level ("tls" for tls.verify), the rest for a section ("verify" in "tls").
template <typename Target>
std::vector<std::string> names_in(std::span<const KeyRow<Target>> rows, const std::string& section) {
  std::vector<std::string> names;
  const std::string prefix = section.empty() ? "" : section + ".";
  for (const KeyRow<Target>& row : rows) {
    std::string name = row.name;
    if (name.rfind(prefix, 0) != 0) continue;
    name = name.substr(prefix.size());
    if (section.empty()) name = name.substr(0, name.find('.'));
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  return names;
}

// The value at a row's name ("tls.verify": verify in the map tls); undefined
// when absent or when a map on the way is not one.
YAML::Node value_at(const YAML::Node& map, const std::string& name) {
  const std::size_t dot = name.find('.');
  if (dot == std::string::npos) return map[name];
  const YAML::Node section = map[name.substr(0, dot)];
  if (!section || !section.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  return value_at(section, name.substr(dot + 1));
}

// Parses each row's value present in `map` into `out`, named prefix + name.
template <typename Target>
void read_rows(const YAML::Node& map, const std::string& prefix, std::span<const KeyRow<Target>> rows, Target& out,
               Loading& at) {
  for (const KeyRow<Target>& row : rows) {
    if (row.value.parse == nullptr) continue;
    if (const YAML::Node value = value_at(map, row.name); value.IsDefined()) {
      row.value.parse(value, prefix + row.name, out, at);
    }
  }
}

ServiceConfig read_service(const YAML::Node& entry, const std::string& key, Loading& at) {
  ServiceConfig service;
  service.line = entry.Mark().line + 1;
  service.queue_bytes = at.config.queue_bytes;
  read_rows(entry, key + ".", service_keys(), service, at);
  if (!entry["name"]) at.checker.problem(entry, key + ".name", "missing (CATEGORY.SERVICE)");
  if (!entry["plugin"]) at.checker.problem(entry, key + ".plugin", "missing (a plugin name or a path to a .so)");
  if (!entry["export"]) service.export_name = service.service;
  if (service.memory_limit != 0 && !service.isolate) {
    at.checker.warning(entry["memory_limit"], key + ".memory_limit",
                       "ignored without isolate: true (only an isolated service's process is measured)");
  }
  if (service.kind == ServiceKind::kEvent && !entry["topics"]) {
    at.checker.problem(entry, key + ".topics", "missing: an event service lists the topic patterns it subscribes to");
  }
  return service;
}

// A service with a problem is left out (the config is refused anyway).
void parse_services(const YAML::Node& list, const std::string& key, Config& out, Loading& at) {
  if (!list.IsSequence()) {
    at.checker.problem(list, key, "must be a list of services");
    return;
  }
  static const std::vector<std::string> known = names_in(service_keys(), "");
  for (std::size_t i = 0; i < list.size(); ++i) {
    const YAML::Node entry = list[i];
    const std::string entry_key = key + "[" + std::to_string(i) + "]";
    if (!entry.IsMap()) {
      at.checker.problem(entry, entry_key, "must be a map with name, plugin and kind");
      continue;
    }
    at.checker.unknown_keys(entry, entry_key + ".", known);
    const std::size_t problems_before = at.checker.count();
    ServiceConfig service = read_service(entry, entry_key, at);
    if (at.checker.count() == problems_before) out.services.push_back(std::move(service));
  }
}

// The line of an entry is where it was written, not what it does.
bool services_differ(const Config& a, const Config& b) {
  auto same = [](const ServiceConfig& x, const ServiceConfig& y) {
    return std::ranges::none_of(service_keys(), [&](const ServiceKey& row) {
      return row.restart == Restart::kWorkers && row.value.differs(x, y);
    });
  };
  return !std::ranges::equal(a.services, b.services, same);
}

}  // namespace

std::string Loading::resolve(const std::string& path) const {
  if (path.empty() || path[0] == '/') return path;
  return (fs::path(base_dir) / path).lexically_normal().string();
}

std::span<const ConfigKey> config_keys() {
  return kConfigKeys;
}
std::span<const ServiceKey> service_keys() {
  return kServiceKeys;
}

void read_config_keys(Loading& at) {
  static const std::vector<std::string> top_level = names_in(config_keys(), "");
  at.checker.unknown_keys(at.root, "", top_level);
  for (const std::string& section : top_level) {
    const std::vector<std::string> inner = names_in(config_keys(), section);
    const YAML::Node map = at.root[section];
    if (inner.empty() || !map) continue;
    std::string list;
    for (const std::string& name : inner) list += (list.empty() ? "" : ", ") + name;
    if (!map.IsMap()) {
      at.checker.problem(map, section, "must be a map (" + list + ")");
    } else {
      at.checker.unknown_keys(map, section + ".", inner);
    }
  }
  read_rows(at.root, "", config_keys(), at.config, at);
}

bool valid_name_part(const std::string& part) {
  if (part.empty()) return false;
  for (char c : part) {
    if (c == '.' || c == ' ' || static_cast<unsigned char>(c) < 0x20) return false;
  }
  return true;
}

}  // namespace sbus
