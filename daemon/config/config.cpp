#include "config/config.hpp"

#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "base/key_file.hpp"
#include "config/checker.hpp"
#include "config/config_keys.hpp"
#include "config/install_paths.hpp"

namespace sbus {
namespace {

namespace fs = std::filesystem;

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "localhost";
  return name;
}

// False, with the problem, when `text` is not YAML or not a map.
bool parse_yaml(const std::string& text, YAML::Node* root, Checker* checker) {
  try {
    *root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    checker->problem_at(e.mark.is_null() ? 0 : e.mark.line + 1, "", "YAML syntax error: " + e.msg);
    return false;
  }
  if (!root->IsMap()) {
    checker->problem_at(1, "", "the config must be a YAML map (node, brokers, services, ...)");
    return false;
  }
  return true;
}

// Before the rows: the defaults that are not constants (the host name, the
// install's plugin_dir) and the command line's settings, which the rows
// then leave alone.
void set_start_values(Loading& at) {
  Config& config = at.config;
  config.node = host_name();
  if (at.overrides.plugin_dir) config.plugin_dir = fs::absolute(*at.overrides.plugin_dir).string();
  if (config.plugin_dir.empty()) config.plugin_dir = kDefaultPluginDir;
  if (at.overrides.log_level) config.log_level = *at.overrides.log_level;
  for (const std::string& uri_text : at.overrides.brokers) {
    BrokerUri uri;
    std::string error;
    if (parse_broker_uri(uri_text, &uri, &error)) {
      config.brokers.push_back(uri_text);
      config.broker_uris.push_back(uri);
    } else {
      at.checker.problem_at(0, "--broker " + uri_text, error);
    }
  }
}

// What follows spans keys: each rule runs after the rows.

void require_brokers(Loading& at) {
  if (at.overrides.brokers.empty() && !at.root["brokers"]) {
    at.checker.problem_at(1, "brokers", "missing: list at least one amqp:// URI");
  }
}

void fill_defaults_from_other_keys(Loading& at) {
  Config& config = at.config;
  if (config.error_queue.empty()) config.error_queue = config.node + ".error";
  if (config.accept.empty()) config.accept.push_back(config.token);
}

void check_ping_timeout(Loading& at) {
  if (at.config.ping_interval_ms > 0 && at.config.ping_timeout_ms < 100) {
    at.checker.problem(at.root["ping_timeout"], "ping_timeout", "must be at least 0.1 s while the ping watcher is on");
  }
}

void check_tls_pair(Loading& at) {
  const YAML::Node tls = at.root["tls"];
  if (tls && tls.IsMap() && at.config.tls.cert_file.empty() != at.config.tls.key_file.empty()) {
    at.checker.problem(tls, "tls", "cert_file and key_file go together (mutual TLS)");
  }
}

// Whichever way it came: a short secret is guessed offline from one token.
void check_secret_length(Loading& at, const std::string& secret_file) {
  const Config& config = at.config;
  if (config.secret.empty() || config.legacy_short_secret) return;
  const std::string problem = short_secret_problem(config.secret.size());
  if (problem.empty()) return;
  if (at.overrides.secret_file) {
    at.checker.problem_at(0, "--secret-file", *at.overrides.secret_file + ": " + problem);
  } else if (!secret_file.empty()) {
    at.checker.problem(at.root["secret_file"], "secret_file", secret_file + ": " + problem);
  } else if (at.root["secret_env"]) {
    at.checker.problem(at.root["secret_env"], "secret_env", problem);
  } else {
    at.checker.problem(at.root["secret"], "secret", problem);
  }
}

// The secret: --secret-file, else secret_file, else secret_env, else the
// inline secret. Never from a command line.
void read_secret(Loading& at) {
  Config& config = at.config;
  Checker& checker = at.checker;
  const YAML::Node& root = at.root;
  std::string secret_file;
  if (root["secret_file"] && checker.scalar(root["secret_file"], "secret_file", &secret_file)) {
    secret_file = at.resolve(secret_file);
  }
  if (at.overrides.secret_file) secret_file = *at.overrides.secret_file;
  if (!secret_file.empty()) {
    std::string error;
    if (!read_secret_file(secret_file, &config.secret, &error)) {
      if (at.overrides.secret_file) {
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
        config.secret = value;
      }
    }
  } else if (root["secret"]) {
    if (checker.scalar(root["secret"], "secret", &config.secret) && config.secret.empty()) {
      checker.problem(root["secret"], "secret", "must not be empty");
    }
  } else {
    checker.problem_at(1, "secret_file", "missing: set secret_file (or secret_env, or secret for tests)");
  }
  check_secret_length(at, secret_file);
}

// Run after the rows, in this order.
constexpr void (*kRules[])(Loading&) = {
    require_brokers, fill_defaults_from_other_keys, check_ping_timeout, check_tls_pair, read_secret, check_access};

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

// Derived from the rows: a key that restarts workers compares its value.
bool worker_settings_differ(const Config& a, const Config& b) {
  return std::ranges::any_of(
      config_keys(), [&](const ConfigKey& row) { return row.restart == Restart::kWorkers && row.value.differs(a, b); });
}

std::string event_queue_name(const Config& config, const ServiceConfig& service) {
  if (!service.group.empty()) return config.events_exchange + ".group." + service.group;
  return config.node + ".event." + service.name;
}

std::vector<EventBinding> event_bindings(const Config& config) {
  std::vector<EventBinding> bindings;
  for (const ServiceConfig& service : config.services) {
    if (service.kind != ServiceKind::kEvent) continue;
    for (const std::string& pattern : service.topics) bindings.push_back({event_queue_name(config, service), pattern});
  }
  std::sort(bindings.begin(), bindings.end());
  bindings.erase(std::unique(bindings.begin(), bindings.end()), bindings.end());
  return bindings;
}

std::vector<EventBinding> retired_bindings(const Config& running, const Config& loaded) {
  // What an earlier reload retired stays retired unless bound again: its
  // workers may not have run yet.
  std::vector<EventBinding> before = event_bindings(running);
  before.insert(before.end(), running.retired_bindings.begin(), running.retired_bindings.end());
  std::sort(before.begin(), before.end());
  before.erase(std::unique(before.begin(), before.end()), before.end());
  const std::vector<EventBinding> after = event_bindings(loaded);
  std::vector<EventBinding> gone;
  // Bound to another exchange, they are not the new workers' to remove.
  if (running.events_exchange != loaded.events_exchange) return gone;
  std::set_difference(before.begin(), before.end(), after.begin(), after.end(), std::back_inserter(gone));
  return gone;
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

bool load_config_text(const std::string& text, const std::string& path, const ConfigOverrides& overrides,
                      Config* config, std::vector<std::string>* problems) {
  Checker checker(path);
  *config = Config{};
  config->path = path;
  YAML::Node root;
  if (parse_yaml(text, &root, &checker)) {
    Loading at{*config, checker, root, overrides, fs::absolute(fs::path(path)).parent_path().string(), {}};
    set_start_values(at);
    read_config_keys(at);
    for (auto rule : kRules) rule(at);
  }
  *problems = std::move(checker.problems());
  config->warnings = std::move(checker.warnings());
  return problems->empty();
}

}  // namespace sbus
