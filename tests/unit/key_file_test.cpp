// The key file rule (base/key_file.hpp) on real files: the secret file
// refusals of a FIFO, a huge sparse file, another owner and a readable mode,
// each named with its file and reason; and the rule's owner and group cases
// on stat records, which need no other user or group to exist.
#include "base/key_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include "config/config.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "sbus-key-file-test-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string write(const std::string& name, const std::string& content, mode_t mode = 0600) const {
    const std::string file = (path_ / name).string();
    {
      std::ofstream out(file, std::ios::binary | std::ios::trunc);
      out << content;
      REQUIRE(out.good());
    }
    REQUIRE(::chmod(file.c_str(), mode) == 0);
    return file;
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

struct stat regular_file(uid_t owner, gid_t group, mode_t mode) {
  struct stat info {};
  info.st_mode = S_IFREG | mode;
  info.st_uid = owner;
  info.st_gid = group;
  info.st_size = 33;
  return info;
}

std::string load_secret(const std::string& yaml, std::string* secret) {
  sbus::Config config;
  std::vector<std::string> problems;
  sbus::load_config_text(yaml, "/etc/sbus/sbusd.yaml", {}, &config, &problems);
  *secret = config.secret;
  std::string all;
  for (const std::string& problem : problems) all += problem + "\n";
  return all;
}

}  // namespace

TEST_CASE("a key file may be its reader's with mode 0600, or root's and group sbus's with 0640", "[key_file]") {
  constexpr uid_t kSbusd = 990;
  constexpr gid_t kSbusGroup = 985;
  SECTION("the reader's own file, 0600 or 0400") {
    CHECK(sbus::key_file_problem("secret file", "/k", regular_file(kSbusd, 1, 0600), kSbusd, kSbusGroup).empty());
    CHECK(sbus::key_file_problem("secret file", "/k", regular_file(kSbusd, 1, 0400), kSbusd, kSbusGroup).empty());
  }
  SECTION("the reader's own file readable by its group or others") {
    for (mode_t mode : {0640, 0604, 0660, 0644}) {
      INFO(mode);
      const std::string problem =
          sbus::key_file_problem("secret file", "/k", regular_file(kSbusd, kSbusGroup, mode), kSbusd, kSbusGroup);
      CHECK_THAT(problem, StartsWith("secret file /k has mode 0"));
      CHECK_THAT(problem, Contains("readable by group or others"));
    }
  }
  SECTION("root's file for group sbus, readable by the group only") {
    CHECK(sbus::key_file_problem("secret file", "/k", regular_file(0, kSbusGroup, 0640), kSbusd, kSbusGroup).empty());
    CHECK(sbus::key_file_problem("secret file", "/k", regular_file(0, kSbusGroup, 0440), kSbusd, kSbusGroup).empty());
    // root reads it as well: an operator's `sbusd --check` of the daemon's config.
    CHECK(sbus::key_file_problem("secret file", "/k", regular_file(0, kSbusGroup, 0640), 0, kSbusGroup).empty());
    for (mode_t mode : {0660, 0644, 0650, 0641}) {
      INFO(mode);
      CHECK_THAT(sbus::key_file_problem("secret file", "/k", regular_file(0, kSbusGroup, mode), kSbusd, kSbusGroup),
                 Contains("only the group's read bit may be set"));
    }
  }
  SECTION("root's file of another group, or with no group sbus on the system") {
    CHECK_THAT(sbus::key_file_problem("secret file", "/k", regular_file(0, 4, 0640), kSbusd, kSbusGroup),
               Contains("not by this user (uid 990) nor root:sbus"));
    CHECK_THAT(sbus::key_file_problem("secret file", "/k", regular_file(0, kSbusGroup, 0640), kSbusd, std::nullopt),
               Contains("owned by uid 0"));
  }
  SECTION("another user's file, whatever its mode") {
    CHECK_THAT(sbus::key_file_problem("secret file", "/k", regular_file(65534, 65534, 0600), kSbusd, kSbusGroup),
               StartsWith("secret file /k is owned by uid 65534"));
  }
}

TEST_CASE("a secret file that breaks the key file rule is refused, naming the file and the reason",
          "[key_file][config]") {
  TempDir dir;
  const std::string path = dir.file("secret");
  const std::string yaml = "brokers: [amqp://127.0.0.1/]\nsecret_file: " + path + "\n";
  std::string secret;

  SECTION("owned by nobody") {
    if (::geteuid() != 0) {
      WARN("not root: cannot chown a file to nobody; the rule's owner case is covered on stat records above");
      return;
    }
    dir.write("secret", "a secret of more than 16 bytes\n", 0600);
    REQUIRE(::chown(path.c_str(), 65534, 65534) == 0);
    const std::string problems = load_secret(yaml, &secret);
    CHECK_THAT(problems,
               StartsWith("/etc/sbus/sbusd.yaml:2: secret_file: secret file " + path + " is owned by uid 65534"));
    CHECK(secret.empty());
  }
  SECTION("mode 0644") {
    dir.write("secret", "a secret of more than 16 bytes\n", 0644);
    const std::string problems = load_secret(yaml, &secret);
    CHECK_THAT(problems, Contains("secret file " + path + " has mode 0644: readable by group or others"));
    CHECK(secret.empty());
  }
  SECTION("a FIFO is refused at once, never waited on") {
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    auto loading = std::async(std::launch::async, [&] {
      std::string read;
      return load_secret(yaml, &read);
    });
    if (loading.wait_for(5s) != std::future_status::ready) {
      // Let the blocked open or read go before failing.
      const int writer = ::open(path.c_str(), O_WRONLY | O_NONBLOCK);
      if (writer >= 0) ::close(writer);
      FAIL("reading a FIFO as the secret file blocked");
    }
    CHECK_THAT(loading.get(), Contains("secret file " + path + " is a FIFO, not a regular file"));
  }
  SECTION("a 300 MB sparse file, refused without being read") {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, 300L * 1024 * 1024) == 0);
    ::close(fd);
    const auto started = std::chrono::steady_clock::now();
    const std::string problems = load_secret(yaml, &secret);
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK_THAT(problems, Contains("secret file " + path + " is 314572800 bytes, more than the 4096"));
    CHECK(secret.empty());
    CHECK(took < 1s);  // nowhere near the time to read 300 MB
  }
  SECTION("a directory") {
    fs::create_directory(path);
    CHECK_THAT(load_secret(yaml, &secret), Contains("is a directory, not a regular file"));
  }
}

TEST_CASE("a secret shorter than 16 bytes is refused unless the fleet is marked legacy", "[key_file][config]") {
  TempDir dir;
  const std::string path = dir.file("secret");
  std::string secret;
  SECTION("from a file: a 1-byte secret, and 15 bytes") {
    for (const std::string text : {"x", "fifteen bytes!!"}) {
      dir.write("secret", text + "\n");
      const std::string problems = load_secret("brokers: [amqp://127.0.0.1/]\nsecret_file: " + path + "\n", &secret);
      CHECK_THAT(problems, StartsWith("/etc/sbus/sbusd.yaml:2: secret_file: " + path + ": the secret is " +
                                      std::to_string(text.size()) + " bytes, shorter than 16"));
      CHECK_THAT(problems, Contains("legacy_short_secret: true"));
    }
  }
  SECTION("16 bytes is enough") {
    dir.write("secret", "sixteen bytes!!!\n");
    CHECK(load_secret("brokers: [amqp://127.0.0.1/]\nsecret_file: " + path + "\n", &secret).empty());
    CHECK(secret == "sixteen bytes!!!");
  }
  SECTION("inline and from the environment alike") {
    CHECK_THAT(load_secret("brokers: [amqp://127.0.0.1/]\nsecret: short\n", &secret),
               StartsWith("/etc/sbus/sbusd.yaml:2: secret: the secret is 5 bytes"));
    ::setenv("SBUS_KEY_FILE_TEST_SECRET", "short", 1);
    CHECK_THAT(load_secret("brokers: [amqp://127.0.0.1/]\nsecret_env: SBUS_KEY_FILE_TEST_SECRET\n", &secret),
               StartsWith("/etc/sbus/sbusd.yaml:2: secret_env: the secret is 5 bytes"));
    ::unsetenv("SBUS_KEY_FILE_TEST_SECRET");
  }
  SECTION("legacy_short_secret: true lets a py-servicebus fleet's short secret through") {
    dir.write("secret", "pysecret\n");
    const std::string problems =
        load_secret("brokers: [amqp://127.0.0.1/]\nlegacy_short_secret: true\nsecret_file: " + path + "\n", &secret);
    CHECK(problems.empty());
    CHECK(secret == "pysecret");
  }
  SECTION("legacy_short_secret must be a boolean") {
    CHECK_THAT(load_secret("brokers: [amqp://127.0.0.1/]\nsecret: a sixteen byte secret\nlegacy_short_secret: maybe\n",
                           &secret),
               Contains(":3: legacy_short_secret: must be true or false"));
  }
}
