// The sbusd YAML config: values, defaults, path resolution, overrides, and a
// message naming FILE:LINE and the key for every problem.
#include "config/config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

namespace fs = std::filesystem;

constexpr const char* kPath = "/etc/sbus/sbusd.yaml";

struct Loaded {
  bool ok = false;
  sbus::Config config;
  std::vector<std::string> problems;

  std::string all_problems() const {
    std::string text;
    for (const std::string& problem : problems) text += problem + "\n";
    return text;
  }
};

Loaded load_text(const std::string& yaml, const sbus::ConfigOverrides& overrides = {},
                 const std::string& path = kPath) {
  Loaded loaded;
  loaded.ok = sbus::load_config_text(yaml, path, overrides, &loaded.config, &loaded.problems);
  return loaded;
}

Loaded load_file(const std::string& path, const sbus::ConfigOverrides& overrides = {}) {
  Loaded loaded;
  loaded.ok = sbus::load_config(path, overrides, &loaded.config, &loaded.problems);
  return loaded;
}

// A private folder, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "sbus-config-test-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }

  std::string write(const std::string& name, const std::string& content, mode_t mode = 0600) const {
    const fs::path file = path_ / name;
    fs::create_directories(file.parent_path());
    {
      std::ofstream out(file, std::ios::binary | std::ios::trunc);
      out << content;
      REQUIRE(out.good());
    }
    REQUIRE(::chmod(file.c_str(), mode) == 0);
    return file.string();
  }

 private:
  fs::path path_;
};

// A minimal valid config; the line numbers are relied on below.
const std::string kMinimal =
    "node: n1\n"                                   // 1
    "brokers:\n"                                   // 2
    "  - amqp://guest:guest@127.0.0.1:5672/%2f\n"  // 3
    "secret: a sixteen byte secret\n"              // 4
    "services:\n"                                  // 5
    "  - name: math.add\n"                         // 6
    "    plugin: math\n";                          // 7

}  // namespace

TEST_CASE("a full valid config loads with its values", "[config]") {
  const Loaded l = load_text(
      "node: node-a\n"
      "brokers:\n"
      "  - amqp://guest:guest@127.0.0.1:5672/%2f\n"
      "  - amqps://u:p@10.0.0.2:5671/vh\n"
      "exchange: my-exchange\n"
      "secret: s3cret of 16 bytes\n"
      "plugin_dir: /opt/sbus/plugins\n"
      "prefetch: 8\n"
      "max_message_bytes: 4096\n"
      "heartbeat: 30\n"
      "drain_timeout: 5\n"
      "log_level: debug\n"
      "services:\n"
      "  - name: math.add\n"  // line 14
      "    plugin: math\n"
      "    kind: rpc\n"
      "    queue_len: 7\n"
      "    idempotent: true\n"
      "  - name: test.log\n"  // line 19
      "    plugin: /opt/other/test.so\n"
      "    kind: message\n"
      "    export: record\n"
      "    options:\n"
      "      file: /tmp/record.log\n"
      "      mode: fast\n");
  INFO(l.all_problems());
  REQUIRE(l.ok);
  const sbus::Config& c = l.config;
  CHECK(c.path == kPath);
  CHECK(c.node == "node-a");
  CHECK(c.brokers == std::vector<std::string>{"amqp://guest:guest@127.0.0.1:5672/%2f", "amqps://u:p@10.0.0.2:5671/vh"});
  REQUIRE(c.broker_uris.size() == 2);
  CHECK(c.broker_uris[0].host == "127.0.0.1");
  CHECK(c.broker_uris[0].vhost == "/");
  CHECK(c.broker_uris[1].host == "10.0.0.2");
  CHECK(c.broker_uris[1].port == 5671);
  CHECK(c.broker_uris[1].user == "u");
  CHECK(c.broker_uris[1].vhost == "vh");
  CHECK(c.broker_uris[1].tls);
  CHECK(c.exchange == "my-exchange");
  CHECK(c.secret == "s3cret of 16 bytes");
  CHECK(c.plugin_dir == "/opt/sbus/plugins");
  CHECK(c.prefetch == 8);
  CHECK(c.max_message_bytes == 4096);
  CHECK(c.heartbeat_seconds == 30);
  CHECK(c.drain_timeout_seconds == 5);
  CHECK(c.log_level == sbus::LogLevel::kDebug);

  REQUIRE(c.services.size() == 2);
  const sbus::ServiceConfig& add = c.services[0];
  CHECK(add.name == "math.add");
  CHECK(add.category == "math");
  CHECK(add.service == "add");
  CHECK(add.plugin == "math");
  CHECK(add.plugin_path == "/opt/sbus/plugins/math.so");
  CHECK(add.export_name == "add");
  CHECK(add.kind == sbus::ServiceKind::kRpc);
  CHECK(add.queue_len == 7);
  CHECK(add.idempotent);
  CHECK(add.line == 14);

  const sbus::ServiceConfig& log = c.services[1];
  CHECK(log.name == "test.log");
  CHECK(log.plugin_path == "/opt/other/test.so");
  CHECK(log.export_name == "record");
  CHECK(log.kind == sbus::ServiceKind::kMessage);
  CHECK(log.options == std::map<std::string, std::string>{{"file", "/tmp/record.log"}, {"mode", "fast"}});
  CHECK(log.line == 19);
}

TEST_CASE("a minimal config gets the documented defaults", "[config]") {
  const Loaded l = load_text(
      "brokers:\n"
      "  - amqp://guest:guest@127.0.0.1:5672/%2f\n"
      "secret: a sixteen byte secret\n"
      "services:\n"
      "  - name: math.add\n"
      "    plugin: math\n");
  INFO(l.all_problems());
  REQUIRE(l.ok);
  const sbus::Config& c = l.config;
  char host[256] = {};
  REQUIRE(::gethostname(host, sizeof(host) - 1) == 0);
  CHECK(c.node == host);
  CHECK(c.exchange == "py-servicebus");
  CHECK(c.prefetch == 64);
  CHECK(c.max_message_bytes == 1048576);
  CHECK(c.heartbeat_seconds == 10);
  CHECK(c.drain_timeout_seconds == 30);
  CHECK(c.log_level == sbus::LogLevel::kInfo);
  // Derived from the install prefix the build was configured with.
  CHECK(c.plugin_dir == std::string(SBUS_INSTALL_PREFIX) + "/lib/sbus/plugins");
  REQUIRE(c.services.size() == 1);
  CHECK(c.services[0].queue_len == 100);
  CHECK_FALSE(c.services[0].idempotent);
  CHECK(c.services[0].kind == sbus::ServiceKind::kRpc);
  CHECK(c.services[0].export_name == "add");
  CHECK(c.services[0].plugin_path == std::string(SBUS_INSTALL_PREFIX) + "/lib/sbus/plugins/math.so");
}

TEST_CASE("queue_bytes, hold_time and the error queue's bounds have defaults and can be set", "[config]") {
  SECTION("defaults") {
    const Loaded l = load_text(kMinimal);
    INFO(l.all_problems());
    REQUIRE(l.ok);
    CHECK(l.config.queue_bytes == 16 * 1024 * 1024);
    CHECK(l.config.services[0].queue_bytes == 16 * 1024 * 1024);
    CHECK(l.config.hold_ms == 5000);
    CHECK(l.config.error_queue_max_length == 10000);
    CHECK(l.config.error_queue_max_bytes == 64 * 1024 * 1024);
  }
  SECTION("the top-level queue_bytes is each service's default; a service may set its own") {
    const Loaded l =
        load_text("queue_bytes: 4096\nhold_time: 0.5\nerror_queue_max_length: 7\nerror_queue_max_bytes: 2048\n" +
                  kMinimal + "  - name: test.sleep\n    plugin: test\n    queue_bytes: 100000\n");
    INFO(l.all_problems());
    REQUIRE(l.ok);
    CHECK(l.config.services[0].queue_bytes == 4096);
    CHECK(l.config.services[1].queue_bytes == 100000);
    CHECK(l.config.hold_ms == 500);
    CHECK(l.config.error_queue_max_length == 7);
    CHECK(l.config.error_queue_max_bytes == 2048);
  }
  SECTION("out of range") {
    const Loaded l = load_text(kMinimal + "    queue_bytes: 10\nhold_time: 0.01\nerror_queue_max_length: 0\n");
    CHECK_FALSE(l.ok);
    CHECK_THAT(l.all_problems(), Catch::Contains("services[0].queue_bytes: ") &&
                                     Catch::Contains("hold_time: must be at least 0.1 s") &&
                                     Catch::Contains("error_queue_max_length: "));
  }
}

TEST_CASE("relative paths are resolved against the config file's folder", "[config]") {
  const Loaded l = load_text(
      "brokers: [amqp://127.0.0.1/]\n"
      "secret: a sixteen byte secret\n"
      "plugin_dir: lib/plugins\n"
      "services:\n"
      "  - name: math.add\n"
      "    plugin: math\n"
      "  - name: test.echo\n"
      "    plugin: ../custom/test.so\n"
      "  - name: test.sleep\n"
      "    plugin: /abs/test.so\n",
      {}, "/srv/sbus/conf/sbusd.yaml");
  INFO(l.all_problems());
  REQUIRE(l.ok);
  CHECK(l.config.plugin_dir == "/srv/sbus/conf/lib/plugins");
  REQUIRE(l.config.services.size() == 3);
  SECTION("a plugin name is plugin_dir/NAME.so") {
    CHECK(l.config.services[0].plugin_path == "/srv/sbus/conf/lib/plugins/math.so");
  }
  SECTION("a relative path to a .so is taken from the config's folder, not plugin_dir") {
    CHECK(l.config.services[1].plugin_path == "/srv/sbus/custom/test.so");
  }
  SECTION("an absolute path is kept") {
    CHECK(l.config.services[2].plugin_path == "/abs/test.so");
  }
}

TEST_CASE("each config problem names FILE:LINE and the key", "[config]") {
  std::string yaml;
  std::string prefix;
  std::string what;

  SECTION("an unknown top-level key") {
    yaml = kMinimal + "colour: red\n";
    prefix = "/etc/sbus/sbusd.yaml:8: colour: ";
    what = "unknown key";
  }
  SECTION("an unknown service key") {
    yaml = kMinimal + "    colour: red\n";
    prefix = "/etc/sbus/sbusd.yaml:8: services[0].colour: ";
    what = "unknown key";
  }
  SECTION("queue_len that is not a number") {
    yaml = kMinimal + "    queue_len: abc\n";
    prefix = "/etc/sbus/sbusd.yaml:8: services[0].queue_len: ";
    what = "must be an integer";
  }
  SECTION("idempotent that is not a boolean") {
    yaml = kMinimal + "    idempotent: sometimes\n";
    prefix = "/etc/sbus/sbusd.yaml:8: services[0].idempotent: ";
    what = "must be true or false";
  }
  SECTION("queue_len out of range") {
    yaml = kMinimal + "    queue_len: 0\n";
    prefix = "/etc/sbus/sbusd.yaml:8: services[0].queue_len: ";
    what = "between 1 and";
  }
  SECTION("prefetch that is not a number") {
    yaml = kMinimal + "prefetch: many\n";
    prefix = "/etc/sbus/sbusd.yaml:8: prefetch: ";
    what = "must be an integer";
  }
  SECTION("a bad log level") {
    yaml = kMinimal + "log_level: loud\n";
    prefix = "/etc/sbus/sbusd.yaml:8: log_level: ";
    what = "debug, info, warn or error";
  }
  SECTION("brokers that is not a list") {
    yaml =
        "node: n1\n"
        "brokers: amqp://guest:guest@127.0.0.1:5672/%2f\n"
        "secret: a sixteen byte secret\n";
    prefix = "/etc/sbus/sbusd.yaml:2: brokers: ";
    what = "must be a non-empty list";
  }
  SECTION("an empty broker list") {
    yaml = "secret: a sixteen byte secret\nbrokers: []\n";
    prefix = "/etc/sbus/sbusd.yaml:2: brokers: ";
    what = "must be a non-empty list";
  }
  SECTION("a broker URI of another scheme") {
    yaml =
        "secret: a sixteen byte secret\n"
        "brokers:\n"
        "  - amqp://127.0.0.1/\n"
        "  - http://x\n";
    prefix = "/etc/sbus/sbusd.yaml:4: brokers[1]: ";
    what = "not an AMQP URI";
  }
  SECTION("a broker URI with a bad port") {
    yaml =
        "secret: a sixteen byte secret\n"
        "brokers:\n"
        "  - amqp://guest:guest@127.0.0.1:port/\n";
    prefix = "/etc/sbus/sbusd.yaml:3: brokers[0]: ";
    what = "malformed AMQP URI";
  }
  SECTION("the same broker twice") {
    yaml =
        "secret: a sixteen byte secret\n"
        "brokers:\n"
        "  - amqp://guest:guest@127.0.0.1:5672/%2f\n"
        "  - amqp://guest:other@127.0.0.1:5672/\n";
    prefix = "/etc/sbus/sbusd.yaml:4: brokers[1]: ";
    what = "duplicate broker";
  }
  SECTION("a duplicate service") {
    yaml = kMinimal +
           "  - name: math.add\n"
           "    plugin: other\n";
    prefix = "/etc/sbus/sbusd.yaml:8: services[1].name: ";
    what = "duplicate service 'math.add'";
  }
  SECTION("a name without a dot") {
    yaml = kMinimal + "  - name: mathadd\n    plugin: math\n";
    prefix = "/etc/sbus/sbusd.yaml:8: services[1].name: ";
    what = "'mathadd' is not CATEGORY.SERVICE";
  }
  SECTION("a name with three parts") {
    yaml = kMinimal + "  - name: node.math.add\n    plugin: math\n";
    prefix = "/etc/sbus/sbusd.yaml:8: services[1].name: ";
    what = "is not CATEGORY.SERVICE";
  }
  SECTION("a name with an empty part") {
    yaml = kMinimal + "  - name: math.\n    plugin: math\n";
    prefix = "/etc/sbus/sbusd.yaml:8: services[1].name: ";
    what = "is not CATEGORY.SERVICE";
  }
  SECTION("a service in sbusd's own category") {
    yaml = kMinimal + "  - name: sbus.stats\n    plugin: math\n";
    prefix = "/etc/sbus/sbusd.yaml:8: services[1].name: ";
    what = "the category 'sbus' is sbusd's own (sbus.stats)";
  }
  SECTION("a service without a name") {
    yaml = kMinimal + "  - plugin: math\n";
    prefix = "/etc/sbus/sbusd.yaml:8: services[1].name: ";
    what = "missing";
  }
  SECTION("a service without a plugin") {
    yaml = kMinimal + "  - name: math.sub\n";
    prefix = "/etc/sbus/sbusd.yaml:8: services[1].plugin: ";
    what = "missing";
  }
  SECTION("a bad kind") {
    yaml = kMinimal + "    kind: stream\n";
    prefix = "/etc/sbus/sbusd.yaml:8: services[0].kind: ";
    what = "must be rpc or message, not 'stream'";
  }
  SECTION("options that are not a map") {
    yaml = kMinimal + "    options: [a, b]\n";
    prefix = "/etc/sbus/sbusd.yaml:8: services[0].options: ";
    what = "must be a map";
  }
  SECTION("missing brokers") {
    yaml = "node: n1\nsecret: a sixteen byte secret\n";
    prefix = "/etc/sbus/sbusd.yaml:1: brokers: ";
    what = "missing";
  }
  SECTION("missing secret") {
    yaml = "node: n1\nbrokers: [amqp://127.0.0.1/]\n";
    prefix = "/etc/sbus/sbusd.yaml:1: secret_file: ";
    what = "missing";
  }
  SECTION("a node name with a dot") {
    yaml = "node: a.b\nsecret: a sixteen byte secret\nbrokers: [amqp://127.0.0.1/]\n";
    prefix = "/etc/sbus/sbusd.yaml:1: node: ";
    what = "not a valid node name";
  }
  SECTION("a YAML syntax error, with its line") {
    yaml =
        "node: n1\n"
        "secret: a sixteen byte secret\n"
        "brokers: [amqp://127.0.0.1/]\n"
        "  bad: indent\n";
    prefix = "/etc/sbus/sbusd.yaml:4: ";
    what = "YAML syntax error";
  }
  SECTION("a config that is not a map") {
    yaml = "- a\n- b\n";
    prefix = "/etc/sbus/sbusd.yaml:1: ";
    what = "must be a YAML map";
  }

  const Loaded l = load_text(yaml);
  INFO(yaml);
  INFO(l.all_problems());
  CHECK_FALSE(l.ok);
  REQUIRE(l.problems.size() == 1);
  CHECK_THAT(l.problems[0], StartsWith(prefix));
  CHECK_THAT(l.problems[0], Contains(what));
}

TEST_CASE("several problems are reported at once, one per line", "[config]") {
  const Loaded l = load_text(
      "node: n1\n"
      "brokers:\n"
      "  - http://x\n"  // 3
      "secret: a sixteen byte secret\n"
      "colour: red\n"  // 5
      "services:\n"
      "  - name: math.add\n"
      "    plugin: math\n"
      "    kind: stream\n"  // 9
      "  - name: bad\n"     // 10
      "    plugin: math\n");
  INFO(l.all_problems());
  CHECK_FALSE(l.ok);
  REQUIRE(l.problems.size() == 4);
  for (const std::string& problem : l.problems) {
    CHECK_THAT(problem, StartsWith("/etc/sbus/sbusd.yaml:"));
    CHECK(problem.find('\n') == std::string::npos);
  }
  const std::string all = l.all_problems();
  CHECK_THAT(all, Contains("sbusd.yaml:3: brokers[0]:"));
  CHECK_THAT(all, Contains("sbusd.yaml:5: colour: unknown key"));
  CHECK_THAT(all, Contains("sbusd.yaml:9: services[0].kind:"));
  CHECK_THAT(all, Contains("sbusd.yaml:10: services[1].name:"));
}

TEST_CASE("load_config reads a file and names it in every problem", "[config]") {
  TempDir dir;
  SECTION("a valid file") {
    const std::string path = dir.write("sbusd.yaml", kMinimal, 0644);
    const Loaded l = load_file(path);
    INFO(l.all_problems());
    REQUIRE(l.ok);
    CHECK(l.config.path == path);
    CHECK(l.config.node == "n1");
  }
  SECTION("a file with a problem") {
    const std::string path = dir.write("agent.yaml", kMinimal + "colour: red\n", 0644);
    const Loaded l = load_file(path);
    CHECK_FALSE(l.ok);
    REQUIRE(l.problems.size() == 1);
    CHECK_THAT(l.problems[0], StartsWith(path + ":8: colour: "));
  }
  SECTION("a file that does not exist") {
    const std::string path = (dir.path() / "missing.yaml").string();
    const Loaded l = load_file(path);
    CHECK_FALSE(l.ok);
    REQUIRE(l.problems.size() == 1);
    CHECK_THAT(l.problems[0], StartsWith(path + ": "));
    CHECK_THAT(l.problems[0], Contains("cannot open"));
  }
  SECTION("relative plugin_dir, plugin and secret_file against the file's folder") {
    dir.write("etc/secret", "from-file, 16 bytes\n", 0600);
    const std::string path = dir.write("etc/sbusd.yaml",
                                       "brokers: [amqp://127.0.0.1/]\n"
                                       "secret_file: secret\n"
                                       "plugin_dir: ../plugins\n"
                                       "services:\n"
                                       "  - name: math.add\n"
                                       "    plugin: math\n"
                                       "  - name: test.echo\n"
                                       "    plugin: ./mine/test.so\n",
                                       0644);
    const Loaded l = load_file(path);
    INFO(l.all_problems());
    REQUIRE(l.ok);
    const fs::path root = fs::absolute(dir.path());
    CHECK(l.config.secret == "from-file, 16 bytes");
    CHECK(l.config.plugin_dir == (root / "plugins").string());
    REQUIRE(l.config.services.size() == 2);
    CHECK(l.config.services[0].plugin_path == (root / "plugins/math.so").string());
    CHECK(l.config.services[1].plugin_path == (root / "etc/mine/test.so").string());
  }
}

TEST_CASE("a secret file must be private to its owner", "[config]") {
  TempDir dir;
  const std::string yaml =
      "brokers: [amqp://127.0.0.1/]\n"
      "secret_file: " +
      (dir.path() / "secret").string() + "\n";  // line 2
  SECTION("mode 0600 is accepted and the trailing newline dropped") {
    dir.write("secret", "top secret of 16 bytes\n", 0600);
    const Loaded l = load_text(yaml);
    INFO(l.all_problems());
    REQUIRE(l.ok);
    CHECK(l.config.secret == "top secret of 16 bytes");
  }
  SECTION("mode 0644 is refused with a clear error") {
    dir.write("secret", "top secret of 16 bytes\n", 0644);
    const Loaded l = load_text(yaml);
    CHECK_FALSE(l.ok);
    REQUIRE(l.problems.size() == 1);
    CHECK_THAT(l.problems[0], StartsWith("/etc/sbus/sbusd.yaml:2: secret_file: "));
    CHECK_THAT(l.problems[0], Contains("readable by group or others"));
    CHECK_THAT(l.problems[0], Contains("chmod 600"));
    CHECK(l.config.secret.empty());
  }
  SECTION("mode 0640 is refused too") {
    dir.write("secret", "top secret of 16 bytes\n", 0640);
    const Loaded l = load_text(yaml);
    CHECK_FALSE(l.ok);
    REQUIRE(l.problems.size() == 1);
    CHECK_THAT(l.problems[0], Contains("readable by group or others"));
  }
  SECTION("a missing file is refused") {
    const Loaded l = load_text(yaml);
    CHECK_FALSE(l.ok);
    REQUIRE(l.problems.size() == 1);
    CHECK_THAT(l.problems[0], StartsWith("/etc/sbus/sbusd.yaml:2: secret_file: "));
    CHECK_THAT(l.problems[0], Contains("cannot read secret file"));
  }
  SECTION("an empty file is refused") {
    dir.write("secret", "\n", 0600);
    const Loaded l = load_text(yaml);
    CHECK_FALSE(l.ok);
    REQUIRE(l.problems.size() == 1);
    CHECK_THAT(l.problems[0], Contains("is empty"));
  }
}

TEST_CASE("an empty inline secret is refused, as an empty secret file is", "[config]") {
  // With an empty secret anyone can compute every token.
  const Loaded l = load_text("brokers: [amqp://127.0.0.1/]\nsecret: \"\"\n");
  CHECK_FALSE(l.ok);
  REQUIRE(l.problems.size() == 1);
  CHECK_THAT(l.problems[0], StartsWith("/etc/sbus/sbusd.yaml:2: secret: "));
}

TEST_CASE("command-line overrides replace the file's values", "[config]") {
  TempDir dir;
  sbus::ConfigOverrides overrides;

  SECTION("brokers") {
    overrides.brokers = {"amqp://a:b@10.1.1.1:5673/x", "amqp://10.1.1.2/"};
    const Loaded l = load_text(kMinimal, overrides);
    INFO(l.all_problems());
    REQUIRE(l.ok);
    CHECK(l.config.brokers == overrides.brokers);
    REQUIRE(l.config.broker_uris.size() == 2);
    CHECK(l.config.broker_uris[0].host == "10.1.1.1");
    CHECK(l.config.broker_uris[1].host == "10.1.1.2");
  }
  SECTION("brokers stand in for a file without any") {
    overrides.brokers = {"amqp://10.1.1.2/"};
    const Loaded l = load_text("secret: a sixteen byte secret\n", overrides);
    INFO(l.all_problems());
    REQUIRE(l.ok);
    CHECK(l.config.brokers == overrides.brokers);
  }
  SECTION("a malformed --broker is reported under its flag") {
    overrides.brokers = {"http://x"};
    const Loaded l = load_text(kMinimal, overrides);
    CHECK_FALSE(l.ok);
    REQUIRE(l.problems.size() == 1);
    CHECK_THAT(l.problems[0], Contains("--broker http://x"));
  }
  SECTION("plugin_dir, which also moves the services' plugins") {
    overrides.plugin_dir = "/opt/override/plugins";
    const Loaded l = load_text(kMinimal + "plugin_dir: /usr/lib/other\n", overrides);
    INFO(l.all_problems());
    REQUIRE(l.ok);
    CHECK(l.config.plugin_dir == "/opt/override/plugins");
    REQUIRE(l.config.services.size() == 1);
    CHECK(l.config.services[0].plugin_path == "/opt/override/plugins/math.so");
  }
  SECTION("secret_file, over both an inline secret and the file's secret_file") {
    dir.write("file-secret", "from-config, 16 bytes\n", 0600);
    overrides.secret_file = dir.write("secret", "from-override, 16 bytes\n", 0600);
    const Loaded inline_secret = load_text(kMinimal, overrides);
    INFO(inline_secret.all_problems());
    REQUIRE(inline_secret.ok);
    CHECK(inline_secret.config.secret == "from-override, 16 bytes");

    const Loaded file_secret = load_text(
        "brokers: [amqp://127.0.0.1/]\nsecret_file: " + (dir.path() / "file-secret").string() + "\n", overrides);
    INFO(file_secret.all_problems());
    REQUIRE(file_secret.ok);
    CHECK(file_secret.config.secret == "from-override, 16 bytes");
  }
  SECTION("a group-readable --secret-file is reported under its flag") {
    overrides.secret_file = dir.write("secret", "x\n", 0644);
    const Loaded l = load_text(kMinimal, overrides);
    CHECK_FALSE(l.ok);
    REQUIRE(l.problems.size() == 1);
    CHECK_THAT(l.problems[0], Contains("--secret-file"));
    CHECK_THAT(l.problems[0], Contains("readable by group or others"));
  }
  SECTION("log level") {
    overrides.log_level = sbus::LogLevel::kError;
    const Loaded l = load_text(kMinimal + "log_level: debug\n", overrides);
    REQUIRE(l.ok);
    CHECK(l.config.log_level == sbus::LogLevel::kError);
  }
}

TEST_CASE("reliability settings have defaults and are checked", "[config]") {
  const std::string base =
      "node: N1\n"
      "brokers: [amqp://guest:guest@127.0.0.1:5672/%2f]\n"
      "secret: a sixteen byte secret\n";
  SECTION("defaults") {
    Loaded loaded = load_text(base);
    REQUIRE(loaded.ok);
    CHECK(loaded.config.queue_type == "classic");
    CHECK(loaded.config.max_retries == 5);
    CHECK(loaded.config.error_queue == "N1.error");
    CHECK(loaded.config.ping_interval_ms == 2000);
    CHECK(loaded.config.ping_timeout_ms == 3000);
  }
  SECTION("values in seconds, with fractions") {
    Loaded loaded = load_text(base +
                              "queue_type: quorum\nmax_retries: 2\nerror_queue: dead\n"
                              "ping_interval: 0.5\nping_timeout: 1.5\n");
    REQUIRE(loaded.ok);
    CHECK(loaded.config.queue_type == "quorum");
    CHECK(loaded.config.max_retries == 2);
    CHECK(loaded.config.error_queue == "dead");
    CHECK(loaded.config.ping_interval_ms == 500);
    CHECK(loaded.config.ping_timeout_ms == 1500);
  }
  SECTION("a queue type other than classic or quorum") {
    Loaded loaded = load_text(base + "queue_type: stream\n");
    CHECK_FALSE(loaded.ok);
    CHECK_THAT(loaded.all_problems(), Contains(":4: queue_type: must be classic or quorum"));
  }
  SECTION("a negative max_retries and a ping timeout that is not a number") {
    Loaded loaded = load_text(base + "max_retries: -1\nping_timeout: soon\n");
    CHECK_FALSE(loaded.ok);
    CHECK_THAT(loaded.all_problems(), Contains(":4: max_retries: must be between 0 and 1000"));
    CHECK_THAT(loaded.all_problems(), Contains(":5: ping_timeout: must be a number of seconds"));
  }
}

TEST_CASE("only settings that change a worker's behaviour count as a change for reload", "[config]") {
  const std::string base =
      "brokers: [amqp://guest:guest@127.0.0.1:5672/%2f]\n"
      "secret: a sixteen byte secret\n"
      "services:\n"
      "  - {name: math.add, plugin: /x/math.so}\n";
  Loaded a = load_text(base);
  REQUIRE(a.ok);
  SECTION("another broker list alone is no change for the workers") {
    Loaded b = load_text(
        "brokers: [amqp://guest:guest@127.0.0.1:5673/%2f]\nsecret: a sixteen byte secret\nservices:\n"
        "  - {name: math.add, plugin: /x/math.so}\n");
    REQUIRE(b.ok);
    CHECK_FALSE(sbus::worker_settings_differ(a.config, b.config));
  }
  SECTION("a service moved to another line is no change") {
    Loaded b = load_text("# moved\n" + base);
    REQUIRE(b.ok);
    CHECK_FALSE(sbus::worker_settings_differ(a.config, b.config));
  }
  SECTION("another queue_len is a change") {
    Loaded b = load_text(
        "brokers: [amqp://guest:guest@127.0.0.1:5672/%2f]\nsecret: a sixteen byte secret\nservices:\n"
        "  - {name: math.add, plugin: /x/math.so, queue_len: 5}\n");
    REQUIRE(b.ok);
    CHECK(sbus::worker_settings_differ(a.config, b.config));
  }
  SECTION("another prefetch is a change") {
    Loaded b = load_text(base + "prefetch: 8\n");
    REQUIRE(b.ok);
    CHECK(sbus::worker_settings_differ(a.config, b.config));
  }
}

TEST_CASE("the tls map is read key by key, with its paths resolved and its problems named tls.KEY", "[config]") {
  SECTION("its values") {
    const Loaded l =
        load_text(kMinimal + "tls: {ca_file: ca.pem, cert_file: /abs/c.pem, key_file: c.key, verify: no}\n");
    INFO(l.all_problems());
    REQUIRE(l.ok);
    CHECK(l.config.tls.ca_file == "/etc/sbus/ca.pem");
    CHECK(l.config.tls.cert_file == "/abs/c.pem");
    CHECK(l.config.tls.key_file == "/etc/sbus/c.key");
    CHECK_FALSE(l.config.tls.verify);
  }
  SECTION("defaults") {
    const Loaded l = load_text(kMinimal);
    REQUIRE(l.ok);
    CHECK(l.config.tls.ca_file.empty());
    CHECK(l.config.tls.verify);
  }
  std::string yaml;
  std::string problem;
  SECTION("an unknown key in it") {
    yaml = kMinimal + "tls:\n  colour: red\n";
    problem = "/etc/sbus/sbusd.yaml:9: tls.colour: unknown key";
  }
  SECTION("tls that is not a map") {
    yaml = kMinimal + "tls: [a]\n";
    problem = "/etc/sbus/sbusd.yaml:8: tls: must be a map (ca_file, cert_file, key_file, verify)";
  }
  SECTION("verify that is not a boolean") {
    yaml = kMinimal + "tls:\n  verify: sometimes\n";
    problem = "/etc/sbus/sbusd.yaml:9: tls.verify: must be true or false";
  }
  SECTION("a certificate without its key") {
    yaml = kMinimal + "tls:\n  cert_file: c.pem\n";
    problem = "/etc/sbus/sbusd.yaml:9: tls: cert_file and key_file go together (mutual TLS)";
  }
  if (yaml.empty()) return;
  const Loaded l = load_text(yaml);
  CHECK_FALSE(l.ok);
  REQUIRE(l.problems.size() == 1);
  CHECK(l.problems[0] == problem);
}
