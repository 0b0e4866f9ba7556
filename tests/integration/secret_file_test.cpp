// The secret file under the key file rule, seen from outside: sbusd and
// sbusd --check refuse a bad one at once, naming the file and the reason;
// a py-servicebus fleet's short secret is served only with
// legacy_short_secret, which warns at every start.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "harness.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using sbus_test::RawAmqp;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;

namespace {

using Clock = std::chrono::steady_clock;

// A config whose secret_file is `secret_path`, nothing else unusual.
std::string write_config(const sbus_test::TempDir& dir, const std::string& secret_path, const std::string& extra = {}) {
  const std::string path = dir.file("sbusd.yaml");
  sbus_test::write_file(path, "node: " + sbus_test::unique_node() + "\nbrokers: [" + sbus_test::broker_uri() +
                                  "]\nsecret_file: " + secret_path + "\nstate_dir: " + dir.file("state") +
                                  "\nplugin_dir: " SBUS_BUILD_DIR "/plugins\n" + extra +
                                  "services:\n  - name: math.add\n    plugin: math\n");
  return path;
}

}  // namespace

TEST_CASE("sbusd and sbusd --check refuse a FIFO as secret file at once, naming it", "[secret]") {
  sbus_test::TempDir dir;
  const std::string fifo = dir.file("secret");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string config = write_config(dir, fifo);
  for (const bool check : {true, false}) {
    INFO((check ? "--check" : "start"));
    std::vector<std::string> args = {"--config", config};
    if (check) args.push_back("--check");
    const auto started = Clock::now();
    const sbus_test::ProcessResult result = sbus_test::run_program(SBUS_BUILD_DIR "/bin/sbusd", args, 20s);
    const double took = std::chrono::duration<double>(Clock::now() - started).count();
    INFO(result.err);
    std::printf("sbusd %s with a FIFO as secret file exited %d after %.2f s\n", check ? "--check" : "(start)",
                result.exit_code, took);
    CHECK(result.exit_code == 1);
    CHECK_THAT(result.err, Contains("secret_file: secret file " + fifo + " is a FIFO, not a regular file"));
    CHECK(took < 5.0);
  }
}

TEST_CASE("sbusd --check names a secret file owned by another user, readable by others, or too short", "[secret]") {
  sbus_test::TempDir dir;
  const std::string secret = dir.file("secret");
  std::string expected;
  SECTION("owned by nobody") {
    if (::geteuid() != 0) {
      WARN("not root: cannot chown the secret file to nobody");
      return;
    }
    sbus_test::write_secret(dir.path());
    REQUIRE(::chown(secret.c_str(), 65534, 65534) == 0);
    expected = "secret file " + secret + " is owned by uid 65534";
  }
  SECTION("mode 0644") {
    sbus_test::write_secret(dir.path());
    REQUIRE(::chmod(secret.c_str(), 0644) == 0);
    expected = "secret file " + secret + " has mode 0644";
  }
  SECTION("one character") {
    sbus_test::write_secret(dir.path(), "x");
    expected = secret + ": the secret is 1 bytes, shorter than 16";
  }
  const sbus_test::ProcessResult result =
      sbus_test::run_program(SBUS_BUILD_DIR "/bin/sbusd", {"--config", write_config(dir, secret), "--check"}, 20s);
  INFO(result.err);
  CHECK(result.exit_code == 1);
  CHECK_THAT(result.err, Contains(expected));
}

TEST_CASE("a py-servicebus fleet's short secret is served only with legacy_short_secret, which warns at start",
          "[secret][wire]") {
  const std::string short_secret = "pysecret";  // as py-servicebus deployments often have
  SECTION("refused without the setting: sbusd does not start") {
    SbusdOptions options;
    options.secret = short_secret;
    options.wait_ready = false;
    SbusdProcess sbusd(options);
    const std::optional<int> code = sbusd.wait_exit(20s);
    INFO(sbusd.log());
    CHECK(code == 1);
    CHECK_THAT(sbusd.log(), Contains(sbusd.secret_file() + ": the secret is 8 bytes, shorter than 16"));
  }
  SECTION("served with legacy_short_secret: true, a compat call written as py-servicebus writes it") {
    SbusdOptions options;
    options.secret = short_secret;
    options.extra_yaml = "legacy_short_secret: true\n";
    SbusdProcess sbusd(options);
    CHECK_THAT(sbusd.log(), Contains("legacy_short_secret: the secret is 8 bytes, shorter than 16"));
    RawAmqp raw;
    const std::string reply_queue = raw.declare_reply_queue();
    raw.publish("py-servicebus", sbusd.node(), sbus_test::py_call_body("py-1", short_secret, "math", "add", "[1,2]"),
                reply_queue, "corr-py-1");
    std::optional<RawAmqp::Message> reply = raw.receive(10s);
    REQUIRE(reply.has_value());
    CHECK(sbus_test::between(reply->body, "<![CDATA[", "]]>") == "3");
    // The CLI takes the short secret only when told so.
    const std::vector<std::string> call = {
        "call",          sbusd.address("math.add"), "[2,2]", "--broker", sbus_test::broker_uri(),
        "--secret-file", sbusd.secret_file()};
    const sbus_test::ProcessResult refused = sbus_test::run_cli(call);
    CHECK(refused.exit_code == 2);
    CHECK_THAT(refused.err, Contains("--legacy-short-secret"));
    std::vector<std::string> legacy = call;
    legacy.push_back("--legacy-short-secret");
    const sbus_test::ProcessResult served = sbus_test::run_cli(legacy);
    INFO(served.err);
    CHECK(served.exit_code == 0);
    CHECK(served.out == "4\n");
  }
}
