// The keys of who may call what: `callers` (identities with keys of their
// own), `policy` (allow and deny rules), and the checks that span keys
// (the node's own identity key, callers without hmac-sha256-v2, rules that
// name no service of this node). docs/security.md#callers is the reference.
#include <fnmatch.h>

#include <algorithm>
#include <set>

#include "config/config_keys.hpp"
#include "base/audit_log.hpp"
#include "base/caller_id.hpp"
#include "base/key_file.hpp"

namespace sbus {
namespace {

// A key of a caller or of the identity: the key file rule, trailing newlines
// dropped, and as long as a secret must be.
bool read_caller_key(const std::string& path, std::string* key, std::string* error) {
  if (!read_key_file("key file", path, key, error)) return false;
  while (!key->empty() && (key->back() == '\n' || key->back() == '\r')) key->pop_back();
  if (key->size() >= kMinSecretBytes) return true;
  *error = "key file " + path + " holds " + std::to_string(key->size()) + " bytes, shorter than " +
           std::to_string(kMinSecretBytes) + ": use a longer key (head -c 32 /dev/urandom | base64)";
  return false;
}

void read_caller_keys(const YAML::Node& entry, const std::string& key, CallerConfig* caller, Loading& at) {
  const YAML::Node one = entry["key_file"];
  const YAML::Node two = entry["key_files"];
  if (one && two) {
    at.checker.problem(entry, key, "key_file and key_files do not go together");
    return;
  }
  if (!one && !two) {
    at.checker.problem(entry, key + ".key_file", "missing (the caller's key file; key_files: [old, new] to rotate)");
    return;
  }
  std::vector<std::pair<YAML::Node, std::string>> files;
  if (one) {
    files.emplace_back(one, key + ".key_file");
  } else if (!two.IsSequence() || two.size() == 0 || two.size() > 2) {
    at.checker.problem(two, key + ".key_files", "must be a list of one or two key files ([old, new] to rotate)");
    return;
  } else {
    for (std::size_t i = 0; i < two.size(); ++i)
      files.emplace_back(two[i], key + ".key_files[" + std::to_string(i) + "]");
  }
  for (const auto& [node, name] : files) {
    std::string path;
    if (!at.checker.scalar(node, name, &path)) continue;
    path = at.resolve(path);
    std::string secret;
    std::string error;
    if (!read_caller_key(path, &secret, &error)) {
      at.checker.problem(node, name, error);
      continue;
    }
    caller->key_files.push_back(path);
    caller->keys.push_back(std::move(secret));
  }
}

CallerConfig read_caller(const YAML::Node& entry, const std::string& key, std::set<std::string>* seen, Loading& at) {
  CallerConfig caller;
  caller.line = entry.Mark().line + 1;
  static const std::string kKnown[] = {"id", "key_file", "key_files"};
  at.checker.unknown_keys(entry, key + ".", kKnown);
  if (!entry["id"]) {
    at.checker.problem(entry, key + ".id", "missing (the caller's identity, as its tokens name it)");
  } else if (at.checker.scalar(entry["id"], key + ".id", &caller.id)) {
    if (!valid_caller_id(caller.id)) {
      at.checker.problem(entry["id"], key + ".id",
                         "'" + caller.id + "' is not a caller id (1 to " + std::to_string(kMaxCallerBytes) +
                             " characters of A-Z a-z 0-9 . _ @ -)");
    } else if (caller.id == kSharedCaller) {
      at.checker.problem(entry["id"], key + ".id",
                         "'" + caller.id + "' is the identity of the shared secret; it has no key of its own");
    } else if (!seen->insert(caller.id).second) {
      at.checker.problem(entry["id"], key + ".id", "duplicate caller '" + caller.id + "'");
    }
  }
  read_caller_keys(entry, key, &caller, at);
  return caller;
}

// `*` and `?` are the only special characters; `[`, `]` and `\` (fnmatch's
// others), spaces and control characters make a glob malformed.
std::string glob_problem(const std::string& glob) {
  if (glob.empty()) return "an empty glob matches nothing";
  for (char c : glob) {
    if (c == '[' || c == ']' || c == '\\' || c == ' ' || static_cast<unsigned char>(c) < 0x20) {
      return "malformed glob '" + glob +
             "': only * and ? are special, and [ ] \\, spaces and control characters "
             "are not allowed";
    }
  }
  return {};
}

void read_globs(const YAML::Node& list, const std::string& key, std::vector<std::string>* out, Loading& at) {
  if (!list.IsSequence() || list.size() == 0) {
    at.checker.problem(list, key, "must be a non-empty list of globs");
    return;
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string item_key = key + "[" + std::to_string(i) + "]";
    std::string glob;
    if (!at.checker.scalar(list[i], item_key, &glob)) continue;
    if (const std::string problem = glob_problem(glob); !problem.empty()) {
      at.checker.problem(list[i], item_key, problem);
      continue;
    }
    out->push_back(std::move(glob));
  }
}

void read_kinds(const YAML::Node& list, const std::string& key, std::vector<std::string>* out, Loading& at) {
  if (!list.IsSequence() || list.size() == 0) {
    at.checker.problem(list, key, "must be a non-empty list of kinds: [call, message, event]");
    return;
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    std::string kind;
    if (!at.checker.scalar(list[i], key + "[" + std::to_string(i) + "]", &kind)) continue;
    if (kind != "call" && kind != "message" && kind != "event") {
      at.checker.problem(list[i], key + "[" + std::to_string(i) + "]",
                         "must be call, message or event, not '" + kind + "'");
      continue;
    }
    out->push_back(std::move(kind));
  }
}

PolicyRule read_rule(const YAML::Node& entry, const std::string& key, Loading& at) {
  PolicyRule rule;
  rule.line = entry.Mark().line + 1;
  const bool allow = entry.IsMap() && entry.size() == 1 && entry["allow"];
  const bool deny = entry.IsMap() && entry.size() == 1 && entry["deny"];
  if (!allow && !deny) {
    at.checker.problem(entry, key, "must be {allow: {...}} or {deny: {...}} (callers, services, kinds)");
    return rule;
  }
  rule.allow = allow;
  const std::string verb = allow ? "allow" : "deny";
  const YAML::Node body = entry[verb];
  const std::string body_key = key + "." + verb;
  if (!body.IsMap()) {
    at.checker.problem(body, body_key, "must be a map: {callers: [...], services: [...], kinds: [...]}");
    return rule;
  }
  static const std::string kKnown[] = {"callers", "services", "kinds"};
  at.checker.unknown_keys(body, body_key + ".", kKnown);
  if (!body["callers"]) at.checker.problem(body, body_key + ".callers", "missing (a list of caller globs)");
  if (!body["services"]) at.checker.problem(body, body_key + ".services", "missing (a list of service globs)");
  if (body["callers"]) read_globs(body["callers"], body_key + ".callers", &rule.callers, at);
  if (body["services"]) read_globs(body["services"], body_key + ".services", &rule.services, at);
  if (body["kinds"]) read_kinds(body["kinds"], body_key + ".kinds", &rule.kinds, at);
  return rule;
}

}  // namespace

// fnmatch without flags: glob_problem() leaves only * and ? special.
bool glob_matches(const std::string& glob, const std::string& text) {
  return ::fnmatch(glob.c_str(), text.c_str(), 0) == 0;
}

void parse_callers(const YAML::Node& list, const std::string& key, Config& out, Loading& at) {
  if (!list.IsSequence()) {
    at.checker.problem(list, key, "must be a list of callers: {id: NAME, key_file: FILE}");
    return;
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string entry_key = key + "[" + std::to_string(i) + "]";
    if (!list[i].IsMap()) {
      at.checker.problem(list[i], entry_key, "must be a map: {id: NAME, key_file: FILE}");
      continue;
    }
    const std::size_t problems_before = at.checker.count();
    CallerConfig caller = read_caller(list[i], entry_key, &seen, at);
    if (at.checker.count() == problems_before) out.callers.push_back(std::move(caller));
  }
}

void parse_policy(const YAML::Node& list, const std::string& key, Config& out, Loading& at) {
  if (!list.IsSequence()) {
    at.checker.problem(list, key, "must be a list of rules: - allow: {callers: [...], services: [...]}");
    return;
  }
  out.has_policy = true;
  for (std::size_t i = 0; i < list.size(); ++i) {
    out.policy.push_back(read_rule(list[i], key + "[" + std::to_string(i) + "]", at));
  }
}

bool policy_differs(const Config& a, const Config& b) {
  return a.has_policy != b.has_policy || a.policy != b.policy;
}

void parse_identity(const YAML::Node& map, const std::string& key, Config& out, Loading& at) {
  if (!map.IsMap()) {
    at.checker.problem(map, key, "must be a map: {id: NAME, key_file: FILE}");
    return;
  }
  static const std::string kKnown[] = {"id", "key_file"};
  at.checker.unknown_keys(map, key + ".", kKnown);
  if (!map["id"] || !map["key_file"]) {
    at.checker.problem(map, key, "needs both id and key_file");
    return;
  }
  if (at.checker.scalar(map["id"], key + ".id", &out.identity_id) &&
      (!valid_caller_id(out.identity_id) || out.identity_id == kSharedCaller)) {
    at.checker.problem(map["id"], key + ".id",
                       "'" + out.identity_id + "' is not a caller id (1 to " + std::to_string(kMaxCallerBytes) +
                           " characters of A-Z a-z 0-9 . _ @ -, not " + std::string(kSharedCaller) + ")");
  }
  if (!at.checker.scalar(map["key_file"], key + ".key_file", &out.identity_key_file)) return;
  out.identity_key_file = at.resolve(out.identity_key_file);
  if (std::string error; !read_caller_key(out.identity_key_file, &out.identity_key, &error)) {
    at.checker.problem(map["key_file"], key + ".key_file", error);
  }
}

bool identity_differs(const Config& a, const Config& b) {
  return a.identity_id != b.identity_id || a.identity_key != b.identity_key;
}

std::vector<std::string> access_changes(const Config& before, const Config& after) {
  std::vector<std::string> lines;
  const auto find = [](const Config& config, const std::string& id) {
    return std::ranges::find(config.callers, id, &CallerConfig::id);
  };
  for (const CallerConfig& caller : after.callers) {
    const auto old = find(before, caller.id);
    if (old == before.callers.end()) {
      lines.push_back(
          audit_change_line(caller.id, "caller-added",
                            std::to_string(caller.keys.size()) + " key(s) from line " + std::to_string(caller.line)));
    } else if (old->keys != caller.keys || old->key_files != caller.key_files) {
      lines.push_back(audit_change_line(
          caller.id, "keys-changed",
          std::to_string(old->keys.size()) + " key(s) -> " + std::to_string(caller.keys.size()) + " key(s)"));
    }
  }
  for (const CallerConfig& caller : before.callers) {
    if (find(after, caller.id) == after.callers.end()) {
      lines.push_back(audit_change_line(caller.id, "caller-removed", "no longer in callers"));
    }
  }
  if (identity_differs(before, after)) {
    lines.push_back(
        audit_change_line(after.identity_id.empty() ? "-" : after.identity_id, "identity-changed",
                          "the node's own calls now sign as " +
                              (after.identity_id.empty() ? std::string(kSharedCaller) : after.identity_id)));
  }
  if (policy_differs(before, after)) {
    const auto describe = [](const Config& config) {
      return config.has_policy ? std::to_string(config.policy.size()) + " rule(s)" : std::string("no policy");
    };
    lines.push_back(audit_change_line("-", "policy-changed", describe(before) + " -> " + describe(after)));
  }
  return lines;
}

void check_access(Loading& at) {
  Config& config = at.config;
  const bool accepts_v2 = std::ranges::find(config.accept, std::string("hmac-sha256-v2")) != config.accept.end();
  if (!config.callers.empty() && !accepts_v2) {
    at.checker.warning(at.root["callers"], "callers",
                       "callers sign hmac-sha256-v2 tokens, which accept does not list: none is let in");
  }
  // A rule for a service this node does not have is no error (the same
  // policy may serve a fleet), but may be a typo: said as a warning.
  const YAML::Node rules = at.root["policy"];
  for (std::size_t i = 0; i < config.policy.size(); ++i) {
    for (std::size_t j = 0; j < config.policy[i].services.size(); ++j) {
      const std::string& glob = config.policy[i].services[j];
      const bool matches = std::ranges::any_of(
          config.services, [&](const ServiceConfig& service) { return glob_matches(glob, service.name); });
      if (matches) continue;
      const std::string verb = config.policy[i].allow ? "allow" : "deny";
      at.checker.warning(rules[i][verb]["services"][j],
                         "policy[" + std::to_string(i) + "]." + verb + ".services[" + std::to_string(j) + "]",
                         "'" + glob + "' matches no service of this node");
    }
  }
}

}  // namespace sbus
