// check_config_isolated(): the config is read and its plugins loaded in a
// child, given up on at its deadline (no broker needed).
#include "supervisor/config_check.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

class Folder {
 public:
  Folder() {
    std::string pattern = (fs::temp_directory_path() / "sbus-config-check-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~Folder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(file(name)) << text;
    ::chmod(file(name).c_str(), 0600);
    return file(name);
  }

 private:
  fs::path path_;
};

std::string config_text(const std::string& secret_file, const std::string& services) {
  // state_dir beside the secret: a check opens the handled store there,
  // never the default /var/lib/sbus.
  const std::string state_dir = secret_file.substr(0, secret_file.rfind('/') + 1) + "state";
  return "node: check-test\nbrokers:\n  - amqp://guest:guest@127.0.0.1:5672/%2f\nsecret_file: " + secret_file +
         "\nplugin_dir: " SBUS_BUILD_DIR "/plugins\nservices:\n" + services + "state_dir: " + state_dir + "\n";
}

const std::string kMath = "  - name: math.add\n    plugin: math\n";

std::string joined(const std::vector<std::string>& problems) {
  std::string text;
  for (const std::string& problem : problems) text += problem + "\n";
  return text;
}

}  // namespace

TEST_CASE("a config check passes a good config and reports the problems of a bad one", "[config_check]") {
  Folder folder;
  const std::string secret = folder.write("secret", "a secret long enough for any rule");
  SECTION("good") {
    const std::string path = folder.write("good.yaml", config_text(secret, kMath));
    const std::vector<std::string> problems = sbus::check_config_isolated(path, {}, 20s);
    INFO(joined(problems));
    CHECK(problems.empty());
  }
  SECTION("a plugin that does not exist") {
    const std::string path = folder.write("bad.yaml", config_text(secret, "  - name: nope.add\n    plugin: nope\n"));
    const std::vector<std::string> problems = sbus::check_config_isolated(path, {}, 20s);
    INFO(joined(problems));
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].find("bad.yaml:7: services[0].plugin: ") != std::string::npos);
  }
}

TEST_CASE("a config check that hangs is given up at its deadline with a problem saying so", "[config_check]") {
  Folder folder;
  SECTION("a FIFO as the secret file is refused at once, never read (the key file rule)") {
    const std::string fifo = folder.file("secret.fifo");
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    const std::string path = folder.write("fifo.yaml", config_text(fifo, kMath));
    const auto started = std::chrono::steady_clock::now();
    const std::vector<std::string> problems = sbus::check_config_isolated(path, {}, 5s);
    const auto took = std::chrono::steady_clock::now() - started;
    INFO(joined(problems));
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].find("is a FIFO, not a regular file") != std::string::npos);
    CHECK(took < 4s);
  }
  SECTION("a plugin whose library hangs while it loads") {
    const std::string secret = folder.write("secret", "a secret long enough for any rule");
    const std::string path =
        folder.write("slow.yaml", config_text(secret, kMath + "  - name: slowload.nothing\n    plugin: " SBUS_BUILD_DIR
                                                              "/test-plugins/slow_load_plugin.so\n"));
    const std::vector<std::string> problems = sbus::check_config_isolated(path, {}, 1s);
    INFO(joined(problems));
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].find("did not finish within 1000 ms") != std::string::npos);
  }
}
