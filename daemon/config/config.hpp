// The sbusd configuration: the YAML file of sbusd and of `sbus --config`.
// See config/sbusd.yaml for the annotated example and docs/configuration.md
// for the reference. Each key is a row of config_keys.cpp (config_keys.hpp
// says how to add one); the fields below are what the rows fill in.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/broker_uri.hpp"
#include "base/log.hpp"
#include "base/tls_options.hpp"

namespace sbus {

enum class ServiceKind { kRpc, kMessage, kEvent };

// As the YAML's `kind:` writes it: rpc, message, event.
inline const char* kind_name(ServiceKind kind) {
  switch (kind) {
    case ServiceKind::kMessage: return "message";
    case ServiceKind::kEvent: return "event";
    case ServiceKind::kRpc: break;
  }
  return "rpc";
}

// The category of the services sbusd answers itself (sbus.stats); no
// configured service may use it.
inline constexpr const char* kOwnCategory = "sbus";

struct ServiceConfig {
  std::string name;  // CATEGORY.SERVICE, as configured
  std::string category;
  std::string service;
  std::string plugin;       // as written in the YAML
  std::string plugin_path;  // resolved path of the .so
  std::string export_name;  // the service's name inside the plugin
  ServiceKind kind = ServiceKind::kRpc;
  std::size_t queue_len = 100;
  // The bytes its queued jobs may hold (body, params and their parse);
  // default: the top-level queue_bytes.
  std::size_t queue_bytes = 16 * 1024 * 1024;
  // RPC only: a call whose worker died running it is run again (up to
  // max_retries times) instead of being answered `interrupted`.
  bool idempotent = false;
  std::map<std::string, std::string> options;
  // Each call or message to it is written to the audit log (allowed or not).
  bool audit = false;
  // Events only: the topic patterns it subscribes to (base/topic.hpp), and
  // the group whose services share one queue (empty: this node's own).
  std::vector<std::string> topics;
  std::string group;
  // Runs in a process of its own per broker (docs/isolation.md); there,
  // over memory_limit bytes of RSS (0: no limit) the process is restarted.
  bool isolate = false;
  std::uint64_t memory_limit = 0;
  int line = 0;  // 1-based line of the entry, for messages
};

// One binding of an event queue to the events exchange.
struct EventBinding {
  std::string queue;
  std::string pattern;
  bool operator==(const EventBinding&) const = default;
  auto operator<=>(const EventBinding&) const = default;
};

// A caller identity of `callers:` (docs/security.md#callers): its id and
// the keys it may sign hmac-sha256-v2 tokens with (two during a rotation),
// read from key_files under the key file rule.
struct CallerConfig {
  std::string id;
  std::vector<std::string> key_files;
  std::vector<std::string> keys;  // in the order of key_files
  int line = 0;
  bool operator==(const CallerConfig&) const = default;
};

// One rule of `policy:`: allow or deny the callers matching a glob of
// `callers` the services matching a glob of `services`, for the `kinds`
// listed (call, message, event; empty: every kind). Globs: `*` any run of
// characters, `?` one, nothing else special.
struct PolicyRule {
  bool allow = true;
  std::vector<std::string> callers;
  std::vector<std::string> services;
  std::vector<std::string> kinds;
  int line = 0;
  bool operator==(const PolicyRule& other) const {
    return allow == other.allow && callers == other.callers && services == other.services && kinds == other.kinds;
  }
};

struct Config {
  std::string path;
  std::string node;
  std::vector<std::string> brokers;  // as written
  std::vector<BrokerUri> broker_uris;
  std::string exchange = "py-servicebus";
  // The durable topic exchange of sbus's own that events are published to.
  std::string events_exchange = "sbus.events";
  std::string secret;
  std::string plugin_dir;
  int prefetch = 64;
  std::size_t max_message_bytes = 1024 * 1024;
  int heartbeat_seconds = 10;
  int drain_timeout_seconds = 30;
  // The ping watcher: every interval a worker round-trips a probe through
  // the broker and drops the connection when no answer comes within the
  // timeout. 0 interval: off.
  int ping_interval_ms = 2000;
  int ping_timeout_ms = 3000;
  // The node queue's type: classic (py-servicebus's, no arguments) or
  // quorum (survives the loss of a node of a RabbitMQ cluster).
  std::string queue_type = "classic";
  // A message whose on_message throws (or that crashes the worker) is tried
  // this many more times, then moved to error_queue (default NODE.error).
  int max_retries = 5;
  std::string error_queue;
  // A service whose calls crashed the worker crash_limit times within
  // crash_cooldown seconds is switched off (answered service_unavailable)
  // until crash_cooldown seconds after its last crash. 0 limit: never.
  int crash_limit = 3;
  int crash_cooldown_seconds = 60;
  // The error queue's bounds (x-max-length, x-max-length-bytes, overflow
  // drop-head): refused messages from outsiders cannot fill the broker.
  std::size_t error_queue_max_length = 10000;
  std::size_t error_queue_max_bytes = 64 * 1024 * 1024;
  // The default of each service's queue_bytes.
  std::size_t queue_bytes = 16 * 1024 * 1024;
  // A message over its service's queue_len or queue_bytes waits this long
  // in the hold queue (NODE.hold) before it comes back to the node queue.
  int hold_ms = 5000;
  // The prefix of deferred delivery's exchanges and queues
  // (protocol/deferral.hpp): PREFIX.0 ... PREFIX.31, PREFIX.out,
  // PREFIX.nodes.
  std::string delay_exchange = "sbus.delay";
  // A call that carries no deadline (py-servicebus senders) gets this one,
  // counted from when the worker reads it; 0: none (protocol/deadline.hpp).
  int default_call_timeout_ms = 0;
  LogLevel log_level = LogLevel::kInfo;
  // Empty: log to stderr (journald under systemd). Otherwise a file that
  // the supervisor writes for all processes and rotates by size.
  std::string log_file;
  // auto: the journal when stderr is its stream, else text.
  LogFormat log_format = LogFormat::kAuto;
  std::size_t log_max_bytes = 10 * 1024 * 1024;
  int log_keep = 5;
  // Where GET /metrics and /healthz are served (base/listen_address.hpp):
  // HOST:PORT or a Unix socket path. Empty: not served.
  std::string metrics_listen;
  // Tokens: `token` is how this side signs (plugins calling other services,
  // the sbus CLI with --config); `accept` what sbusd accepts (default: just
  // `token`), both during a migration. hmac-sha256 calls older or newer
  // than max_skew are refused.
  std::string token = "compat";
  std::vector<std::string> accept;
  int max_skew_seconds = 60;
  // Where sbusd keeps what must outlive a restart: the nonces of the
  // hmac-sha256 calls seen within max_skew (replay-nonces). Read at start.
  std::string state_dir = "/var/lib/sbus";
  // The store of handled message ids (STATE_DIR/handled, worker/handled_store.hpp;
  // docs/reliability.md#handled-once): ids are kept this long, at most this
  // many; a call's reply is kept up to this size; the file stays under
  // handled_max_bytes.
  std::int64_t handled_keep_seconds = 7 * 24 * 3600;
  std::int64_t handled_max_ids = 1000000;
  std::int64_t handled_reply_max_bytes = 64 * 1024;
  std::int64_t handled_max_bytes = 1LL << 30;
  // How long the record of a delivery acked before its commit may wait to
  // be committed with others (0: each is committed before its ack).
  std::int64_t handled_commit_ms = 5;
  // A fleet whose secret is shorter than kMinSecretBytes and cannot rotate
  // yet (py-servicebus peers share it): accepted, with a warning at start.
  bool legacy_short_secret = false;
  // For amqps:// brokers: the YAML's `tls:` map.
  TlsOptions tls;
  std::vector<ServiceConfig> services;
  // Who may call: the callers with keys of their own, and the policy. No
  // `policy` key (has_policy false): every valid caller may call every
  // service; with one, what no rule allows is denied.
  std::vector<CallerConfig> callers;
  bool has_policy = false;
  std::vector<PolicyRule> policy;
  // The node's own identity (identity.id, identity.key_file): how its
  // plugins' senders sign hmac-sha256-v2 calls. Empty id: with the secret.
  std::string identity_id;
  std::string identity_key_file;
  std::string identity_key;
  // Not problems, said by --check and at start ("FILE:LINE: key: what"):
  // a policy rule naming a service this node does not have.
  std::vector<std::string> warnings;
  // Not a key: set by the supervisor on a reload that replaces the workers,
  // the bindings of the running config that the new one no longer has. The
  // new workers remove them when they connect (event_bindings()).
  std::vector<EventBinding> retired_bindings;
};

// The queue an event service consumes: NODE.event.CATEGORY.SERVICE, this
// node's own copy of every event it subscribes to; with a group,
// EVENTS_EXCHANGE.group.GROUP, shared by every service of the group.
std::string event_queue_name(const Config& config, const ServiceConfig& service);

// Every binding the event services of `config` need, sorted, without
// duplicates (two services of one group may share a pattern).
std::vector<EventBinding> event_bindings(const Config& config);

// The bindings of `running` (and those it retired itself) that `loaded`
// does not have.
std::vector<EventBinding> retired_bindings(const Config& running, const Config& loaded);

// True when a worker running `a` would behave differently under `b`: a key
// whose row in config_keys.cpp restarts workers has another value (every
// key but brokers, legacy_short_secret and the log file's). The supervisor
// calls it on SIGHUP; plugin files are compared by the caller.
bool worker_settings_differ(const Config& a, const Config& b);

// The audit lines (base/audit_log.hpp) of what a reload from `before` to
// `after` changes of who may call what: callers added or removed, a
// caller's keys changed, the node's identity, the policy. Pure.
std::vector<std::string> access_changes(const Config& before, const Config& after);

// Command-line settings that replace those of the file.
struct ConfigOverrides {
  std::vector<std::string> brokers;
  std::optional<std::string> plugin_dir;
  std::optional<std::string> secret_file;
  std::optional<LogLevel> log_level;
};

// Reads and validates `path`. Returns true when the config is usable;
// otherwise `problems` holds one line per problem, each naming the file, the
// line and the key ("sbusd.yaml:7: brokers[1]: malformed AMQP URI ...").
// Does not load plugins (see worker/plugin_loader.hpp for that check).
bool load_config(const std::string& path, const ConfigOverrides& overrides, Config* config,
                 std::vector<std::string>* problems);

// Same, from YAML text; `path` is used for messages and relative paths.
bool load_config_text(const std::string& text, const std::string& path, const ConfigOverrides& overrides,
                      Config* config, std::vector<std::string>* problems);

inline constexpr std::size_t kMinSecretBytes = 16;

// The token modes: py-servicebus's daily token, the per-call hmac of sbus
// 1 (kept for roll-overs) and the one that covers the node and signs
// replies (docs/security.md).
inline bool valid_token_mode(const std::string& mode) {
  return mode == "compat" || mode == "hmac-sha256" || mode == "hmac-sha256-v2";
}

// Whether a valid glob of a policy rule (`*` any run of characters, `?`
// one; nothing else special) matches `text`.
bool glob_matches(const std::string& glob, const std::string& text);

// Whether `config` accepts an hmac token mode: then sbusd keeps the nonces
// it has seen in state_dir.
inline bool accepts_hmac(const Config& config) {
  for (const std::string& mode : config.accept) {
    if (mode.rfind("hmac-sha256", 0) == 0) return true;
  }
  return false;
}

// STATE_DIR/handled: the folder of the handled ids' store (HandledStore).
inline std::string handled_dir_of(const Config& config) {
  return config.state_dir + "/handled";
}

// STATE_DIR/crash-journal: the file of CrashJournal::open_file().
inline std::string crash_journal_file_of(const Config& config) {
  return config.state_dir + "/crash-journal";
}

// STATE_DIR/replay-nonces: the file of ReplayCache::open_file().
inline std::string replay_file_of(const Config& config) {
  return config.state_dir + "/replay-nonces";
}

// Reads a secret from `path` under the key file rule (base/key_file.hpp).
// Trailing newlines are dropped; an empty secret is refused. The length is
// checked by the caller (short_secret_problem).
bool read_secret_file(const std::string& path, std::string* secret, std::string* error);

// Why a secret of `length` bytes is refused (shorter than kMinSecretBytes);
// empty when it is long enough.
std::string short_secret_problem(std::size_t length);

}  // namespace sbus
