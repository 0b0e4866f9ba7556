// The config's key tables (daemon/config/config_keys.hpp) against what
// depends on them: the reference in docs/configuration.md, and the reload
// decision of worker_settings_differ(), key by key.
#include "config/config_keys.hpp"

#include <stdlib.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

// One row of a reference table: | `key` | type | default | restarts workers | meaning |
struct DocRow {
  std::string key;
  std::string type;
  std::string default_shown;
  std::string restarts;
  std::string meaning;
};

std::string trim(const std::string& text) {
  const std::size_t first = text.find_first_not_of(' ');
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(' ') - first + 1);
}

// The tables of docs/configuration.md with the reference's header, in the
// order they appear.
std::vector<std::vector<DocRow>> reference_tables() {
  std::ifstream in(fs::path(SBUS_SOURCE_DIR) / "docs/configuration.md");
  REQUIRE(in);
  std::vector<std::vector<DocRow>> tables;
  bool in_table = false;
  for (std::string line; std::getline(in, line);) {
    if (line == "| key | type | default | restarts workers | meaning |") {
      tables.emplace_back();
      in_table = true;
      std::getline(in, line);  // | --- | ...
      continue;
    }
    if (!in_table) continue;
    if (line.rfind("| ", 0) != 0) {
      in_table = false;
      continue;
    }
    std::vector<std::string> cells;
    std::istringstream row(line.substr(1));
    for (std::string cell; std::getline(row, cell, '|');) cells.push_back(trim(cell));
    REQUIRE(cells.size() == 5);
    REQUIRE(cells[0].size() > 2);
    tables.back().push_back({cells[0].substr(1, cells[0].size() - 2), cells[1], cells[2], cells[3], cells[4]});
  }
  return tables;
}

template <typename Target>
void check_reference(const std::vector<DocRow>& documented, std::span<const sbus::KeyRow<Target>> rows) {
  std::vector<std::string> documented_keys;
  for (const DocRow& doc : documented) documented_keys.push_back(doc.key);
  std::vector<std::string> row_keys;
  for (const sbus::KeyRow<Target>& row : rows) row_keys.push_back(row.name);
  for (const std::string& key : row_keys) {
    INFO("config_keys.cpp has `" << key << "`; docs/configuration.md must document it");
    CHECK(std::count(documented_keys.begin(), documented_keys.end(), key) == 1);
  }
  for (const std::string& key : documented_keys) {
    INFO("docs/configuration.md documents `" << key << "`, which config_keys.cpp does not have");
    CHECK(std::count(row_keys.begin(), row_keys.end(), key) == 1);
  }
  // The same order, so that the two read side by side.
  CHECK(documented_keys == row_keys);
  for (const sbus::KeyRow<Target>& row : rows) {
    const auto doc =
        std::find_if(documented.begin(), documented.end(), [&](const DocRow& d) { return d.key == row.name; });
    if (doc == documented.end()) continue;
    INFO("`" << row.name << "` in docs/configuration.md and in config_keys.cpp");
    CHECK(doc->type == row.value.type);
    CHECK(doc->default_shown == row.default_shown);
    CHECK(doc->restarts == (row.restart == sbus::Restart::kWorkers ? "yes" : "no"));
    CHECK_THAT(doc->meaning, Catch::StartsWith(row.description));
  }
}

// The config every key's example is tried against. Its folder holds the
// file that secret_file's example names, and the environment the variable
// that secret_env's example names; the TLS pair is set so that changing one
// half still loads.
class KeyChanges {
 public:
  KeyChanges() {
    std::string pattern = (fs::temp_directory_path() / "sbus-config-keys-test-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir_ = pattern;
    {
      std::ofstream secret(dir_ / "secret");
      secret << "a secret from a file, 16 bytes or more\n";
    }
    REQUIRE(::chmod((dir_ / "secret").c_str(), 0600) == 0);
    REQUIRE(::setenv("SBUS_SECRET", "a secret from the environment", 1) == 0);
  }
  ~KeyChanges() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  KeyChanges(const KeyChanges&) = delete;
  KeyChanges& operator=(const KeyChanges&) = delete;

  static YAML::Node base() {
    return YAML::Load(
        "node: n1\n"
        "brokers: [amqp://guest:guest@127.0.0.1:5672/%2f]\n"
        "secret: a sixteen byte secret\n"
        "tls: {cert_file: client.pem, key_file: client.key}\n"
        "services:\n"
        "  - {name: math.add, plugin: math}\n");
  }

  sbus::Config load(const YAML::Node& yaml) const {
    YAML::Emitter text;
    text << yaml;
    sbus::Config config;
    std::vector<std::string> problems;
    const bool ok = sbus::load_config_text(text.c_str(), (dir_ / "sbusd.yaml").string(), {}, &config, &problems);
    std::string all;
    for (const std::string& problem : problems) all += problem + "\n";
    INFO(text.c_str());
    INFO(all);
    REQUIRE(ok);
    return config;
  }

 private:
  fs::path dir_;
};

// The value a reference shows as a default, as YAML: a number, "N MiB", or
// a whole cell in backticks without a capital letter (`py-servicebus`, not
// `NODE.error`, whose capitals stand for another value). Empty when the
// default is described rather than shown ("host name", "(stderr)").
std::string shown_value(const std::string& shown) {
  static const std::regex number(R"(\d+)");
  static const std::regex mebibytes(R"((\d+) MiB)");
  static const std::regex literal(R"(`([^`A-Z]+)`)");
  std::smatch m;
  if (std::regex_match(shown, number)) return shown;
  if (std::regex_match(shown, m, mebibytes)) return std::to_string(std::stoll(m[1]) * 1024 * 1024);
  if (std::regex_match(shown, m, literal)) return m[1];
  return "";
}

// `yaml` with the value at `name` ("tls.verify": verify in tls) replaced.
void set_at(YAML::Node yaml, const std::string& name, const YAML::Node& value) {
  const std::size_t dot = name.find('.');
  if (dot == std::string::npos) {
    yaml[name] = value;
  } else {
    set_at(yaml[name.substr(0, dot)], name.substr(dot + 1), value);
  }
}

}  // namespace

TEST_CASE(
    "docs/configuration.md documents every key of the loader's tables, in their order, with the same type, "
    "default and restart decision",
    "[config]") {
  const auto tables = reference_tables();
  REQUIRE(tables.size() == 2);
  SECTION("the top-level keys") {
    check_reference(tables[0], sbus::config_keys());
  }
  SECTION("the keys of each service") {
    check_reference(tables[1], sbus::service_keys());
  }
}

TEST_CASE("Every key says whether a change restarts the workers and can compare its value", "[config]") {
  // config_keys.cpp checks the same at compile time; this names the row.
  for (const sbus::ConfigKey& row : sbus::config_keys()) {
    INFO(row.name);
    CHECK((row.restart == sbus::Restart::kWorkers || row.restart == sbus::Restart::kNone));
    CHECK(row.value.differs != nullptr);
  }
  for (const sbus::ServiceKey& row : sbus::service_keys()) {
    INFO("services[]." << row.name);
    CHECK((row.restart == sbus::Restart::kWorkers || row.restart == sbus::Restart::kNone));
    CHECK(row.value.differs != nullptr);
  }
}

TEST_CASE("Changing any one key restarts the workers on reload exactly when its row says so", "[config][reload]") {
  const KeyChanges changes;
  const sbus::Config before = changes.load(KeyChanges::base());
  SECTION("the top-level keys") {
    for (const sbus::ConfigKey& row : sbus::config_keys()) {
      INFO(row.name << ": " << row.example);
      YAML::Node yaml = KeyChanges::base();
      set_at(yaml, row.name, YAML::Load(row.example));
      const sbus::Config after = changes.load(yaml);
      // The example does change the key (else the next check proves nothing).
      REQUIRE(row.value.differs(before, after));
      CHECK(sbus::worker_settings_differ(before, after) == (row.restart == sbus::Restart::kWorkers));
    }
  }
  SECTION("the keys of a service") {
    for (const sbus::ServiceKey& row : sbus::service_keys()) {
      INFO("services[0]." << row.name << ": " << row.example);
      YAML::Node yaml = KeyChanges::base();
      yaml["services"][0][row.name] = YAML::Load(row.example);
      const sbus::Config after = changes.load(yaml);
      REQUIRE(before.services.size() == 1);
      REQUIRE(after.services.size() == 1);
      REQUIRE(row.value.differs(before.services[0], after.services[0]));
      CHECK(sbus::worker_settings_differ(before, after) == (row.restart == sbus::Restart::kWorkers));
    }
  }
  SECTION("the same file loaded twice is no change") {
    CHECK_FALSE(sbus::worker_settings_differ(before, changes.load(KeyChanges::base())));
  }
}

TEST_CASE("Every default the reference shows is the loader's default", "[config]") {
  const KeyChanges changes;
  const sbus::Config before = changes.load(KeyChanges::base());
  int shown = 0;
  for (const sbus::ConfigKey& row : sbus::config_keys()) {
    const std::string value = shown_value(row.default_shown);
    if (value.empty()) continue;  // described, not shown
    ++shown;
    INFO(row.name << ": " << value);
    YAML::Node yaml = KeyChanges::base();
    set_at(yaml, row.name, YAML::Load(value));
    CHECK_FALSE(row.value.differs(before, changes.load(yaml)));
  }
  for (const sbus::ServiceKey& row : sbus::service_keys()) {
    const std::string value = shown_value(row.default_shown);
    if (value.empty()) continue;
    ++shown;
    INFO("services[0]." << row.name << ": " << value);
    YAML::Node yaml = KeyChanges::base();
    yaml["services"][0][row.name] = YAML::Load(value);
    const sbus::Config after = changes.load(yaml);
    REQUIRE(after.services.size() == 1);
    CHECK_FALSE(row.value.differs(before.services[0], after.services[0]));
  }
  // The parse is not vacuous: most defaults are shown as values.
  CHECK(shown >= 25);
}
