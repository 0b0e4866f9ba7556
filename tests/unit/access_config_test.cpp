// The YAML of who may call what: `callers`, `identity`, `policy` and a
// service's `audit`, as load_config (and so `sbusd --check`) reads them:
// every problem named with FILE:LINE and the key, unknown services in a
// rule a warning.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.hpp"

using Catch::Matchers::Contains;

namespace {

namespace fs = std::filesystem;

class KeyDir {
 public:
  KeyDir() {
    std::string pattern = (fs::temp_directory_path() / "sbus-access-config-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~KeyDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string key(const std::string& name, const std::string& text, mode_t mode = 0600) const {
    const std::string path = path_ + "/" + name;
    std::ofstream(path) << text << "\n";
    REQUIRE(::chmod(path.c_str(), mode) == 0);
    return path;
  }
  std::string yaml_path() const { return path_ + "/sbusd.yaml"; }

 private:
  std::string path_;
};

struct Loaded {
  bool ok = false;
  sbus::Config config;
  std::vector<std::string> problems;
  std::string all() const {
    std::string text;
    for (const std::string& line : problems) text += line + "\n";
    return text;
  }
};

Loaded load(const KeyDir& dir, const std::string& access) {
  const std::string yaml =
      "node: n1\n"
      "brokers: [amqp://127.0.0.1/]\n"
      "secret: a sixteen byte secret\n"
      "accept: [compat, hmac-sha256-v2]\n"
      "services:\n"
      "  - {name: math.add, plugin: math, audit: true}\n"
      "  - {name: test.echo, plugin: test}\n" +
      access;
  Loaded loaded;
  loaded.ok = sbus::load_config_text(yaml, dir.yaml_path(), {}, &loaded.config, &loaded.problems);
  return loaded;
}

}  // namespace

TEST_CASE("callers, identity, policy and audit are read as written", "[config][callers]") {
  const KeyDir dir;
  const std::string a = dir.key("a", "billing key, long enough"), b = dir.key("b", "ops old key, long enough"),
                    c = dir.key("c", "ops new key, long enough");
  const Loaded loaded = load(dir,
                             "callers:\n"
                             "  - {id: billing, key_file: a}\n"
                             "  - {id: ops, key_files: [b, c]}\n"
                             "identity: {id: n1-self, key_file: a}\n"
                             "policy:\n"
                             "  - allow: {callers: [billing], services: [\"math.*\"], kinds: [call]}\n"
                             "  - deny: {callers: [\"*\"], services: [test.echo]}\n");
  INFO(loaded.all());
  REQUIRE(loaded.ok);
  const sbus::Config& config = loaded.config;
  REQUIRE(config.callers.size() == 2);
  CHECK(config.callers[0].id == "billing");
  CHECK(config.callers[0].keys == std::vector<std::string>{"billing key, long enough"});
  CHECK(config.callers[1].key_files == std::vector<std::string>{b, c});
  CHECK(config.callers[1].keys.size() == 2);
  CHECK(config.identity_id == "n1-self");
  CHECK(config.identity_key == "billing key, long enough");
  CHECK(config.has_policy);
  REQUIRE(config.policy.size() == 2);
  CHECK(config.policy[0].allow);
  CHECK(config.policy[0].kinds == std::vector<std::string>{"call"});
  CHECK_FALSE(config.policy[1].allow);
  CHECK(config.policy[1].line == 14);
  CHECK(config.services[0].audit);
  CHECK_FALSE(config.services[1].audit);
  CHECK(config.warnings.empty());
}

TEST_CASE("No policy key is no policy, and an empty one denies everything", "[config][callers]") {
  const KeyDir dir;
  CHECK_FALSE(load(dir, "").config.has_policy);
  const Loaded empty = load(dir, "policy: []\n");
  REQUIRE(empty.ok);
  CHECK(empty.config.has_policy);
  CHECK(empty.config.policy.empty());
}

TEST_CASE("Bad callers are problems named with file, line and key", "[config][callers]") {
  const KeyDir dir;
  const std::string good = dir.key("good", "a key that is long enough");
  const auto problems = [&](const std::string& access) {
    const Loaded loaded = load(dir, access);
    CHECK_FALSE(loaded.ok);
    return loaded.all();
  };
  CHECK_THAT(problems("callers:\n  - {id: \"bad id\", key_file: good}\n"),
             Contains(dir.yaml_path() + ":9: callers[0].id: 'bad id' is not a caller id"));
  CHECK_THAT(problems("callers:\n  - {id: " + std::string(65, 'x') + ", key_file: good}\n"),
             Contains("callers[0].id: '" + std::string(65, 'x') + "' is not a caller id"));
  CHECK_THAT(problems("callers:\n  - {id: py-servicebus, key_file: good}\n"),
             Contains("is the identity of the shared secret"));
  CHECK_THAT(problems("callers:\n  - {id: a, key_file: good}\n  - {id: a, key_file: good}\n"),
             Contains(":10: callers[1].id: duplicate caller 'a'"));
  CHECK_THAT(problems("callers:\n  - {id: a, key_file: missing}\n"), Contains(":9: callers[0].key_file: "));
  CHECK_THAT(problems("callers:\n  - {id: a}\n"), Contains("callers[0].key_file: missing"));
  CHECK_THAT(problems("callers:\n  - {id: a, key_files: [good, good, good]}\n"),
             Contains("callers[0].key_files: must be a list of one or two key files"));
  CHECK_THAT(problems("callers:\n  - {id: a, key_file: good, colour: red}\n"),
             Contains("callers[0].colour: unknown key"));
  SECTION("the secret file's rule: a key others can read, or a short one") {
    dir.key("open", "a key that is long enough", 0644);
    CHECK_THAT(problems("callers:\n  - {id: a, key_file: open}\n"), Contains(":9: callers[0].key_file: "));
    dir.key("short", "short");
    CHECK_THAT(problems("callers:\n  - {id: a, key_file: short}\n"), Contains("shorter than 16"));
  }
  SECTION("an identity without its key") {
    CHECK_THAT(problems("identity: {id: me}\n"), Contains("identity: needs both id and key_file"));
  }
}

TEST_CASE("Malformed rules are problems, and a rule for a service this node lacks is a warning",
          "[config][callers][policy]") {
  const KeyDir dir;
  const auto problems = [&](const std::string& access) {
    const Loaded loaded = load(dir, access);
    CHECK_FALSE(loaded.ok);
    return loaded.all();
  };
  CHECK_THAT(problems("policy:\n  - allow: {callers: [\"bil[ling\"], services: [\"*\"]}\n"),
             Contains(":9: policy[0].allow.callers[0]: malformed glob 'bil[ling'"));
  CHECK_THAT(problems("policy:\n  - allow: {callers: [a], services: [\"math\\\\.add\"]}\n"),
             Contains("policy[0].allow.services[0]: malformed glob"));
  CHECK_THAT(problems("policy:\n  - permit: {callers: [a], services: [b]}\n"),
             Contains("policy[0]: must be {allow: {...}} or {deny: {...}}"));
  CHECK_THAT(problems("policy:\n  - allow: {services: [b]}\n"), Contains("policy[0].allow.callers: missing"));
  CHECK_THAT(problems("policy:\n  - deny: {callers: [a], services: [b], kinds: [publish]}\n"),
             Contains("policy[0].deny.kinds[0]: must be call, message or event, not 'publish'"));
  const Loaded warned = load(dir, "policy:\n  - allow: {callers: [a], services: [\"math.*\", \"billing.*\"]}\n");
  INFO(warned.all());
  CHECK(warned.ok);
  REQUIRE(warned.config.warnings.size() == 1);
  CHECK_THAT(warned.config.warnings[0],
             Contains(":9: policy[0].allow.services[1]: 'billing.*' matches no service of this node"));
}
