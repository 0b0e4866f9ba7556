// The config's keys as tables, one row a key: its name, how its value is
// read, whether a changed value restarts the workers, and its line in the
// reference (docs/configuration.md). load_config_text() reads a file by the
// rows, worker_settings_differ() compares two configs by them, and
// tests/unit/config_keys_test.cpp holds the reference and the reload
// decisions against them.
//
// A new key is a field of Config (or ServiceConfig), a row here and a line
// in docs/configuration.md; a row cannot leave out whether a change restarts
// the workers (config_keys.cpp checks that at compile time).
//
// Internal to daemon/config/; what other folders use is config.hpp.
#pragma once

#include <set>
#include <span>
#include <string>

#include "config/checker.hpp"
#include "config/config.hpp"

namespace sbus {

// What a changed value does on SIGHUP. There is no default: a row must say.
enum class Restart {
  kWorkers = 1,  // the workers are replaced, one at a time
  kNone,         // the workers keep running (the supervisor's own settings,
                 // and brokers, whose workers are added or drained one by one)
};

// What the parsers share while one file is read.
struct Loading {
  Config& config;
  Checker& checker;
  const YAML::Node& root;  // the file's top-level map
  const ConfigOverrides& overrides;
  std::string base_dir;  // where relative paths start: the file's folder
  std::set<std::string> service_names;

  // `path` against base_dir; an absolute or empty path as it is.
  std::string resolve(const std::string& path) const;
};

// How a key's value is read and compared.
template <typename Target>
struct ValueReader {
  // Reads a value that is present into `out`, each problem named by `key`
  // (the name, or "services[2].kind"). Null when a rule after the rows reads
  // the key together with others (the secret's three sources).
  void (*parse)(const YAML::Node& value, const std::string& key, Target& out, Loading& at);
  // Whether the value the loader left (defaults filled in, paths resolved)
  // differs between a and b. Every row has one; worker_settings_differ()
  // asks the rows whose restart is kWorkers.
  bool (*differs)(const Target& a, const Target& b);
  const char* type;  // as the reference shows it: integer, seconds, path...
};

// One key of a map. Target is Config for the top-level keys (whose names,
// such as "tls.verify", may reach into a map of their own) and ServiceConfig
// for the keys of each entry of `services`.
template <typename Target>
struct KeyRow {
  const char* name;
  ValueReader<Target> value;
  Restart restart;
  // The reference: the default as shown, and the start of the meaning column
  // (the reference may go on after it).
  const char* default_shown;
  const char* description;
  // A valid value other than the default, as YAML; the tests load it.
  const char* example;
};

using ConfigKey = KeyRow<Config>;
using ServiceKey = KeyRow<ServiceConfig>;

// The top-level keys, in the order they are read and documented (services
// last: they need plugin_dir and queue_bytes).
std::span<const ConfigKey> config_keys();
// The keys of each entry of `services`.
std::span<const ServiceKey> service_keys();

// Reads every key of the file at at.root into at.config by the rows:
// unknown keys and maps that are not maps are problems, each present key is
// parsed. What spans keys (defaults taken from another key, the secret) is
// left to the caller.
void read_config_keys(Loading& at);

// The keys of who may call what (access_keys.cpp): `callers` and `policy`,
// their comparison for a reload, and the rule after the rows that reads the
// identity's key and holds the policy against the services.
void parse_callers(const YAML::Node& list, const std::string& key, Config& out, Loading& at);
void parse_policy(const YAML::Node& list, const std::string& key, Config& out, Loading& at);
bool policy_differs(const Config& a, const Config& b);
void parse_identity(const YAML::Node& map, const std::string& key, Config& out, Loading& at);
bool identity_differs(const Config& a, const Config& b);
void check_access(Loading& at);

// Whether `node` is a valid node name, or part of a service name: not empty,
// no dot, space or control character.
bool valid_name_part(const std::string& part);

}  // namespace sbus
