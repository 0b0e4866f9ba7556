#include "config/config.hpp"
#include "config/install_paths.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "base/key_file.hpp"

namespace sbus {
namespace {

namespace fs = std::filesystem;

constexpr const char* kServiceKeys[] = {"name",   "plugin",     "kind",   "queue_len",
                                        "queue_bytes", "export", "idempotent", "options"};
constexpr const char* kTopKeys[] = {"node",      "brokers",           "exchange",  "secret",
                                    "secret_file", "plugin_dir",      "prefetch",  "max_message_bytes",
                                    "heartbeat", "log_level",         "services",  "drain_timeout",
                                    "log_file",  "log_max_bytes",     "log_keep",  "ping_interval",
                                    "ping_timeout", "queue_type",       "max_retries", "error_queue",
                                    "tls",       "token",             "accept",    "max_skew",
                                    "secret_env", "crash_limit",      "crash_cooldown", "legacy_short_secret",
                                    "state_dir",  "queue_bytes",      "hold_time", "error_queue_max_length",
                                    "error_queue_max_bytes"};
constexpr const char* kTlsKeys[] = {"ca_file", "cert_file", "key_file", "verify"};

// Collects problems, each prefixed with "FILE:LINE: KEY: ".
class Checker {
 public:
  explicit Checker(std::string file) : file_(std::move(file)) {}

  void problem(const YAML::Node& where, const std::string& key, const std::string& what) {
    problem_at(where.Mark().is_null() ? 0 : where.Mark().line + 1, key, what);
  }
  void problem_at(int line, const std::string& key, const std::string& what) {
    std::ostringstream out;
    out << file_;
    if (line > 0) out << ':' << line;
    out << ": ";
    if (!key.empty()) out << key << ": ";
    out << what;
    problems_.push_back(out.str());
  }

  bool scalar(const YAML::Node& node, const std::string& key, std::string* out) {
    if (!node.IsScalar()) {
      problem(node, key, "must be a string");
      return false;
    }
    *out = node.Scalar();
    return true;
  }

  // An integer in [min, max].
  template <typename T>
  bool integer(const YAML::Node& node, const std::string& key, long long min, long long max, T* out) {
    long long value = 0;
    if (!node.IsScalar() || !YAML::convert<long long>::decode(node, value)) {
      problem(node, key, "must be an integer");
      return false;
    }
    if (value < min || value > max) {
      problem(node, key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
      return false;
    }
    *out = static_cast<T>(value);
    return true;
  }

  void unknown_keys(const YAML::Node& map, const std::string& prefix, const char* const* keys,
                    std::size_t count) {
    for (const auto& entry : map) {
      const std::string key = entry.first.Scalar();
      bool known = false;
      for (std::size_t i = 0; i < count; ++i) known = known || key == keys[i];
      if (!known) problem(entry.first, prefix + key, "unknown key");
    }
  }

  std::vector<std::string>& problems() { return problems_; }

 private:
  std::string file_;
  std::vector<std::string> problems_;
};

std::string resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  return (fs::path(base_dir) / path).lexically_normal().string();
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "localhost";
  return name;
}

bool valid_name_part(const std::string& part) {
  if (part.empty()) return false;
  for (char c : part) {
    if (c == '.' || c == ' ' || static_cast<unsigned char>(c) < 0x20) return false;
  }
  return true;
}

void load_services(const YAML::Node& list, const std::string& base_dir, Config* config,
                   Checker* checker) {
  if (!list.IsSequence()) {
    checker->problem(list, "services", "must be a list of services");
    return;
  }
  std::set<std::string> names;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const YAML::Node entry = list[i];
    const std::string at = "services[" + std::to_string(i) + "]";
    if (!entry.IsMap()) {
      checker->problem(entry, at, "must be a map with name, plugin and kind");
      continue;
    }
    checker->unknown_keys(entry, at + ".", kServiceKeys, std::size(kServiceKeys));

    ServiceConfig service;
    service.line = entry.Mark().line + 1;
    bool ok = true;
    if (!entry["name"]) {
      checker->problem(entry, at + ".name", "missing (CATEGORY.SERVICE)");
      ok = false;
    } else if (checker->scalar(entry["name"], at + ".name", &service.name)) {
      std::size_t dot = service.name.find('.');
      service.category = service.name.substr(0, dot);
      service.service = dot == std::string::npos ? "" : service.name.substr(dot + 1);
      if (dot == std::string::npos || !valid_name_part(service.category) ||
          !valid_name_part(service.service)) {
        checker->problem(entry["name"], at + ".name",
                         "'" + service.name + "' is not CATEGORY.SERVICE");
        ok = false;
      } else if (service.category == kOwnCategory) {
        checker->problem(entry["name"], at + ".name",
                         "the category '" + std::string(kOwnCategory) + "' is sbusd's own (" +
                             std::string(kOwnCategory) + ".stats)");
        ok = false;
      } else if (!names.insert(service.name).second) {
        checker->problem(entry["name"], at + ".name", "duplicate service '" + service.name + "'");
        ok = false;
      }
    } else {
      ok = false;
    }

    if (!entry["plugin"]) {
      checker->problem(entry, at + ".plugin", "missing (a plugin name or a path to a .so)");
      ok = false;
    } else if (checker->scalar(entry["plugin"], at + ".plugin", &service.plugin)) {
      const bool is_path = service.plugin.find('/') != std::string::npos ||
                           service.plugin.ends_with(".so");
      service.plugin_path = is_path ? resolve(base_dir, service.plugin)
                                    : (fs::path(config->plugin_dir) / (service.plugin + ".so")).string();
    } else {
      ok = false;
    }

    std::string kind = "rpc";
    if (entry["kind"] && checker->scalar(entry["kind"], at + ".kind", &kind)) {
      if (kind == "rpc") {
        service.kind = ServiceKind::kRpc;
      } else if (kind == "message") {
        service.kind = ServiceKind::kMessage;
      } else {
        checker->problem(entry["kind"], at + ".kind", "must be rpc or message, not '" + kind + "'");
        ok = false;
      }
    }
    if (entry["queue_len"] &&
        !checker->integer(entry["queue_len"], at + ".queue_len", 1, 1000000, &service.queue_len)) {
      ok = false;
    }
    service.queue_bytes = config->queue_bytes;
    if (entry["queue_bytes"] && !checker->integer(entry["queue_bytes"], at + ".queue_bytes", 1024, 1LL << 40,
                                                  &service.queue_bytes)) {
      ok = false;
    }
    service.export_name = service.service;
    if (entry["export"] && !checker->scalar(entry["export"], at + ".export", &service.export_name)) {
      ok = false;
    }
    if (const YAML::Node idempotent = entry["idempotent"]) {
      if (!idempotent.IsScalar() || !YAML::convert<bool>::decode(idempotent, service.idempotent)) {
        checker->problem(idempotent, at + ".idempotent", "must be true or false");
        ok = false;
      }
    }
    if (const YAML::Node options = entry["options"]) {
      if (!options.IsMap()) {
        checker->problem(options, at + ".options", "must be a map of names to values");
        ok = false;
      } else {
        for (const auto& option : options) {
          std::string value;
          if (checker->scalar(option.second, at + ".options." + option.first.Scalar(), &value)) {
            service.options[option.first.Scalar()] = value;
          } else {
            ok = false;
          }
        }
      }
    }
    if (ok) config->services.push_back(std::move(service));
  }
}

}  // namespace

bool read_secret_file(const std::string& path, std::string* secret, std::string* error) {
  if (!read_key_file("secret file", path, secret, error)) return false;
  while (!secret->empty() && (secret->back() == '\n' || secret->back() == '\r')) secret->pop_back();
  if (secret->empty()) {
    *error = "secret file " + path + " is empty";
    return false;
  }
  return true;
}

std::string short_secret_problem(std::size_t length) {
  if (length >= kMinSecretBytes) return {};
  return "the secret is " + std::to_string(length) + " bytes, shorter than " + std::to_string(kMinSecretBytes) +
         ": use a longer one (head -c 32 /dev/urandom | base64), or set legacy_short_secret: true while a "
         "py-servicebus fleet still shares it";
}

bool worker_settings_differ(const Config& a, const Config& b) {
  // The line of an entry is where it was written, not what it does.
  auto same_service = [](const ServiceConfig& x, const ServiceConfig& y) {
    return x.name == y.name && x.plugin_path == y.plugin_path && x.export_name == y.export_name &&
           x.kind == y.kind && x.queue_len == y.queue_len && x.queue_bytes == y.queue_bytes &&
           x.idempotent == y.idempotent &&
           x.options == y.options;
  };
  if (a.services.size() != b.services.size() ||
      !std::equal(a.services.begin(), a.services.end(), b.services.begin(), same_service)) {
    return true;
  }
  return a.node != b.node || a.exchange != b.exchange || a.secret != b.secret ||
         a.plugin_dir != b.plugin_dir || a.prefetch != b.prefetch ||
         a.max_message_bytes != b.max_message_bytes || a.heartbeat_seconds != b.heartbeat_seconds ||
         a.drain_timeout_seconds != b.drain_timeout_seconds || a.log_level != b.log_level ||
         a.ping_interval_ms != b.ping_interval_ms || a.ping_timeout_ms != b.ping_timeout_ms ||
         a.queue_type != b.queue_type || a.max_retries != b.max_retries || a.error_queue != b.error_queue ||
         a.tls.ca_file != b.tls.ca_file || a.tls.cert_file != b.tls.cert_file ||
         a.tls.key_file != b.tls.key_file || a.tls.verify != b.tls.verify || a.token != b.token ||
         a.accept != b.accept || a.max_skew_seconds != b.max_skew_seconds || a.crash_limit != b.crash_limit ||
         a.crash_cooldown_seconds != b.crash_cooldown_seconds || a.state_dir != b.state_dir || a.hold_ms != b.hold_ms ||
         a.error_queue_max_length != b.error_queue_max_length || a.error_queue_max_bytes != b.error_queue_max_bytes;
}

bool load_config(const std::string& path, const ConfigOverrides& overrides, Config* config,
                 std::vector<std::string>* problems) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    problems->push_back(path + ": cannot open: " + std::strerror(errno));
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return load_config_text(text.str(), path, overrides, config, problems);
}

bool load_config_text(const std::string& text, const std::string& path,
                      const ConfigOverrides& overrides, Config* config,
                      std::vector<std::string>* problems) {
  Checker checker(path);
  *config = Config{};
  config->path = path;
  const std::string base_dir = fs::absolute(fs::path(path)).parent_path().string();

  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    checker.problem_at(e.mark.is_null() ? 0 : e.mark.line + 1, "", "YAML syntax error: " + e.msg);
    *problems = std::move(checker.problems());
    return false;
  }
  if (!root.IsMap()) {
    checker.problem_at(1, "", "the config must be a YAML map (node, brokers, services, ...)");
    *problems = std::move(checker.problems());
    return false;
  }
  checker.unknown_keys(root, "", kTopKeys, std::size(kTopKeys));

  config->node = host_name();
  if (root["node"] && checker.scalar(root["node"], "node", &config->node) &&
      !valid_name_part(config->node)) {
    checker.problem(root["node"], "node", "'" + config->node + "' is not a valid node name (no dots)");
  }
  if (root["exchange"]) checker.scalar(root["exchange"], "exchange", &config->exchange);

  if (root["plugin_dir"] && checker.scalar(root["plugin_dir"], "plugin_dir", &config->plugin_dir)) {
    config->plugin_dir = resolve(base_dir, config->plugin_dir);
  }
  if (overrides.plugin_dir) config->plugin_dir = fs::absolute(*overrides.plugin_dir).string();
  if (config->plugin_dir.empty()) config->plugin_dir = kDefaultPluginDir;

  if (root["prefetch"]) checker.integer(root["prefetch"], "prefetch", 1, 65535, &config->prefetch);
  if (root["max_message_bytes"]) {
    checker.integer(root["max_message_bytes"], "max_message_bytes", 64, 1LL << 30,
                    &config->max_message_bytes);
  }
  if (root["heartbeat"]) checker.integer(root["heartbeat"], "heartbeat", 0, 3600, &config->heartbeat_seconds);
  if (root["drain_timeout"]) {
    checker.integer(root["drain_timeout"], "drain_timeout", 0, 3600, &config->drain_timeout_seconds);
  }
  // Seconds in the YAML, with fractions: 0.5 is half a second.
  auto seconds = [&checker](const YAML::Node& node, const char* key, double max, int* out_ms) {
    double value = 0;
    if (!node.IsScalar() || !YAML::convert<double>::decode(node, value) || value < 0 || value > max) {
      checker.problem(node, key, "must be a number of seconds between 0 and " + std::to_string(static_cast<int>(max)));
      return;
    }
    *out_ms = static_cast<int>(value * 1000);
  };
  if (root["ping_interval"]) seconds(root["ping_interval"], "ping_interval", 3600, &config->ping_interval_ms);
  if (root["ping_timeout"]) seconds(root["ping_timeout"], "ping_timeout", 600, &config->ping_timeout_ms);
  if (config->ping_interval_ms > 0 && config->ping_timeout_ms < 100) {
    checker.problem(root["ping_timeout"], "ping_timeout", "must be at least 0.1 s while the ping watcher is on");
  }
  if (root["queue_type"] && checker.scalar(root["queue_type"], "queue_type", &config->queue_type) &&
      config->queue_type != "classic" && config->queue_type != "quorum") {
    checker.problem(root["queue_type"], "queue_type", "must be classic or quorum, not '" + config->queue_type + "'");
  }
  if (root["max_retries"]) checker.integer(root["max_retries"], "max_retries", 0, 1000, &config->max_retries);
  if (root["error_queue"]) checker.scalar(root["error_queue"], "error_queue", &config->error_queue);
  if (root["crash_limit"]) checker.integer(root["crash_limit"], "crash_limit", 0, 1000, &config->crash_limit);
  if (root["crash_cooldown"]) {
    checker.integer(root["crash_cooldown"], "crash_cooldown", 1, 86400, &config->crash_cooldown_seconds);
  }
  if (config->error_queue.empty()) config->error_queue = config->node + ".error";
  if (root["error_queue_max_length"]) {
    checker.integer(root["error_queue_max_length"], "error_queue_max_length", 1, 1LL << 31,
                    &config->error_queue_max_length);
  }
  if (root["error_queue_max_bytes"]) {
    checker.integer(root["error_queue_max_bytes"], "error_queue_max_bytes", 1024, 1LL << 40,
                    &config->error_queue_max_bytes);
  }
  if (root["queue_bytes"]) checker.integer(root["queue_bytes"], "queue_bytes", 1024, 1LL << 40, &config->queue_bytes);
  if (root["hold_time"]) {
    seconds(root["hold_time"], "hold_time", 3600, &config->hold_ms);
    if (config->hold_ms < 100) checker.problem(root["hold_time"], "hold_time", "must be at least 0.1 s");
  }
  if (root["log_level"]) {
    std::string level;
    if (checker.scalar(root["log_level"], "log_level", &level) &&
        !parse_log_level(level, &config->log_level)) {
      checker.problem(root["log_level"], "log_level", "must be debug, info, warn or error");
    }
  }
  if (overrides.log_level) config->log_level = *overrides.log_level;
  if (root["log_file"] && checker.scalar(root["log_file"], "log_file", &config->log_file)) {
    config->log_file = resolve(base_dir, config->log_file);
  }
  if (root["log_max_bytes"]) {
    checker.integer(root["log_max_bytes"], "log_max_bytes", 4096, 1LL << 40, &config->log_max_bytes);
  }
  if (root["log_keep"]) checker.integer(root["log_keep"], "log_keep", 0, 100, &config->log_keep);

  // Brokers: from the command line when given there.
  if (!overrides.brokers.empty()) {
    for (const std::string& uri_text : overrides.brokers) {
      BrokerUri uri;
      std::string error;
      if (parse_broker_uri(uri_text, &uri, &error)) {
        config->brokers.push_back(uri_text);
        config->broker_uris.push_back(uri);
      } else {
        checker.problem_at(0, "--broker " + uri_text, error);
      }
    }
  } else if (!root["brokers"]) {
    checker.problem_at(1, "brokers", "missing: list at least one amqp:// URI");
  } else if (!root["brokers"].IsSequence() || root["brokers"].size() == 0) {
    checker.problem(root["brokers"], "brokers", "must be a non-empty list of amqp:// URIs");
  } else {
    std::set<std::string> seen;
    for (std::size_t i = 0; i < root["brokers"].size(); ++i) {
      const YAML::Node item = root["brokers"][i];
      const std::string key = "brokers[" + std::to_string(i) + "]";
      std::string uri_text;
      if (!checker.scalar(item, key, &uri_text)) continue;
      BrokerUri uri;
      std::string error;
      if (!parse_broker_uri(uri_text, &uri, &error)) {
        checker.problem(item, key, error);
      } else if (!seen.insert(uri.redacted()).second) {
        checker.problem(item, key, "duplicate broker " + uri.redacted());
      } else {
        config->brokers.push_back(uri_text);
        config->broker_uris.push_back(uri);
      }
    }
  }

  // Tokens.
  auto token_mode = [&checker](const YAML::Node& node, const std::string& key, std::string* out) {
    if (checker.scalar(node, key, out) && !valid_token_mode(*out)) {
      checker.problem(node, key, "must be compat, hmac-sha256 or hmac-sha256-v2, not '" + *out + "'");
    }
  };
  if (root["token"]) token_mode(root["token"], "token", &config->token);
  if (const YAML::Node accept = root["accept"]) {
    if (!accept.IsSequence() || accept.size() == 0) {
      checker.problem(accept, "accept", "must be a list of token modes: [compat, hmac-sha256, hmac-sha256-v2]");
    } else {
      for (std::size_t i = 0; i < accept.size(); ++i) {
        std::string mode;
        token_mode(accept[i], "accept[" + std::to_string(i) + "]", &mode);
        config->accept.push_back(mode);
      }
    }
  }
  if (config->accept.empty()) config->accept.push_back(config->token);
  if (root["max_skew"]) checker.integer(root["max_skew"], "max_skew", 1, 86400, &config->max_skew_seconds);
  if (root["state_dir"] && checker.scalar(root["state_dir"], "state_dir", &config->state_dir)) {
    config->state_dir = resolve(base_dir, config->state_dir);
    if (config->state_dir.empty()) checker.problem(root["state_dir"], "state_dir", "must not be empty");
  }
  if (const YAML::Node legacy = root["legacy_short_secret"]) {
    if (!legacy.IsScalar() || !YAML::convert<bool>::decode(legacy, config->legacy_short_secret)) {
      checker.problem(legacy, "legacy_short_secret", "must be true or false");
    }
  }

  // The secret: --secret-file, else secret_file, else secret_env, else
  // inline secret. Never from a command line.
  std::string secret_file;
  if (root["secret_file"] && checker.scalar(root["secret_file"], "secret_file", &secret_file)) {
    secret_file = resolve(base_dir, secret_file);
  }
  if (overrides.secret_file) secret_file = *overrides.secret_file;
  if (!secret_file.empty()) {
    std::string error;
    if (!read_secret_file(secret_file, &config->secret, &error)) {
      if (overrides.secret_file) {
        checker.problem_at(0, "--secret-file", error);
      } else {
        checker.problem(root["secret_file"], "secret_file", error);
      }
    }
  } else if (root["secret_env"]) {
    std::string variable;
    if (checker.scalar(root["secret_env"], "secret_env", &variable)) {
      const char* value = std::getenv(variable.c_str());
      if (value == nullptr || *value == '\0') {
        checker.problem(root["secret_env"], "secret_env", "environment variable " + variable + " is not set or empty");
      } else {
        config->secret = value;
      }
    }
  } else if (root["secret"]) {
    if (checker.scalar(root["secret"], "secret", &config->secret) && config->secret.empty()) {
      checker.problem(root["secret"], "secret", "must not be empty");
    }
  } else {
    checker.problem_at(1, "secret_file", "missing: set secret_file (or secret_env, or secret for tests)");
  }
  // Whichever way it came: a short secret is guessed offline from one token.
  if (!config->secret.empty() && !config->legacy_short_secret) {
    if (std::string problem = short_secret_problem(config->secret.size()); !problem.empty()) {
      if (overrides.secret_file) {
        checker.problem_at(0, "--secret-file", *overrides.secret_file + ": " + problem);
      } else if (!secret_file.empty()) {
        checker.problem(root["secret_file"], "secret_file", secret_file + ": " + problem);
      } else if (root["secret_env"]) {
        checker.problem(root["secret_env"], "secret_env", problem);
      } else {
        checker.problem(root["secret"], "secret", problem);
      }
    }
  }

  if (const YAML::Node tls = root["tls"]) {
    if (!tls.IsMap()) {
      checker.problem(tls, "tls", "must be a map (ca_file, cert_file, key_file, verify)");
    } else {
      checker.unknown_keys(tls, "tls.", kTlsKeys, std::size(kTlsKeys));
      for (auto [key, out] : {std::pair{"ca_file", &config->tls.ca_file}, std::pair{"cert_file", &config->tls.cert_file},
                              std::pair{"key_file", &config->tls.key_file}}) {
        if (tls[key] && checker.scalar(tls[key], std::string("tls.") + key, out)) *out = resolve(base_dir, *out);
      }
      if (tls["verify"]) {
        bool verify = true;
        if (!tls["verify"].IsScalar() || !YAML::convert<bool>::decode(tls["verify"], verify)) {
          checker.problem(tls["verify"], "tls.verify", "must be true or false");
        }
        config->tls.verify = verify;
      }
      if (config->tls.cert_file.empty() != config->tls.key_file.empty()) {
        checker.problem(tls, "tls", "cert_file and key_file go together (mutual TLS)");
      }
    }
  }

  if (root["services"]) load_services(root["services"], base_dir, config, &checker);

  *problems = std::move(checker.problems());
  return problems->empty();
}

}  // namespace sbus
