// amqps:// end to end: sbusd, the sbus CLI and sbus::Sender over TLS with
// mutual authentication, and every broker the client must not trust refused
// with its own reason. The endpoints come from the CTest fixture
// `tls_brokers` (tests/tls/tls_brokers): a RabbitMQ node with a good
// certificate for localhost, one whose certificate is for wrong.example,
// both demanding a client certificate, a TLS server whose certificate has
// expired and one that speaks only TLS 1.1.
#include <catch2/catch.hpp>

#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <sbus/sender.hpp>

#include "harness.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using sbus_test::ProcessResult;
using sbus_test::read_file;
using sbus_test::run_cli;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using sbus_test::wait_until;

namespace {

std::string state_file(const std::string& name) {
  std::string text = read_file(std::string(SBUS_TLS_STATE_DIR) + "/" + name);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.empty()) {
    throw std::runtime_error(
        "no TLS test endpoints: " SBUS_TLS_STATE_DIR "/" + name +
        " is missing. The CTest fixture `tls_brokers` (tests/tls/tls_brokers start " SBUS_TLS_STATE_DIR
        ") writes it; run the tests with `ctest -L tls`.");
  }
  return text;
}

std::string cert(const std::string& name) {
  return state_file("certdir") + "/" + name;
}

// amqps://guest:guest@HOST:PORT/%2f of the endpoint `role` (good,
// wrong-name, expired, old-tls).
std::string uri(const std::string& role, const std::string& host = "localhost") {
  return "amqps://guest:guest@" + host + ":" + state_file(role + ".port") + "/%2f";
}

// The same URI as sbus writes it in logs and errors: no password.
std::string redacted(const std::string& role, const std::string& host = "localhost") {
  return "amqps://guest@" + host + ":" + state_file(role + ".port") + "/%2f";
}

std::string tls_yaml(bool verify = true) {
  return "tls:\n"
         "  ca_file: " +
         cert("ca.pem") +
         "\n"
         "  cert_file: " +
         cert("client.pem") +
         "\n"
         "  key_file: " +
         cert("client.key") + "\n" + (verify ? "" : "  verify: false\n");
}

sbus::SenderOptions tls_sender(std::vector<std::string> brokers) {
  sbus::SenderOptions options;
  options.brokers = std::move(brokers);
  options.secret = sbus_test::kSecret;
  options.tls_ca_file = cert("ca.pem");
  options.tls_cert_file = cert("client.pem");
  options.tls_key_file = cert("client.key");
  return options;
}

// The first line of `text` that contains `needle`, or "".
std::string line_with(const std::string& text, const std::string& needle) {
  const std::size_t at = text.find(needle);
  if (at == std::string::npos) return {};
  const std::size_t start = text.rfind('\n', at);
  const std::size_t end = text.find('\n', at);
  const std::size_t from = start == std::string::npos ? 0 : start + 1;
  return text.substr(from, end == std::string::npos ? std::string::npos : end - from);
}

// Waits until `sbusd` answers PING through `options`' brokers.
void wait_served(SbusdProcess& sbusd, const sbus::SenderOptions& options) {
  sbus::Sender sender(options);
  const bool ready = wait_until(
      [&] {
        if (sbusd.wait_exit(0ms)) return true;
        try {
          return sender.ping(sbusd.node(), 250ms);
        } catch (const sbus::SenderError&) {
          return false;  // e.g. the exchange is not declared yet
        }
      },
      20s, 50ms);
  if (!ready || !sbusd.running()) {
    throw std::runtime_error("sbusd node " + sbusd.node() + " did not answer PING over TLS; its log:\n" + sbusd.log());
  }
}

// `sbus ping NODE` against `broker`, trusting `ca`, with the client
// certificate `client` (.pem and .key; none if empty).
ProcessResult cli_ping(const std::string& broker, const std::string& ca, const std::string& client = "client") {
  std::vector<std::string> args = {"ping", "no-such-node", "--broker", broker, "--tls-ca", ca, "--timeout", "2"};
  if (!client.empty()) {
    args.insert(args.end(), {"--tls-cert", cert(client + ".pem"), "--tls-key", cert(client + ".key")});
  }
  return run_cli(args, 20s);
}

}  // namespace

TEST_CASE("sbusd serves calls over amqps:// with mutual TLS, to the sbus CLI and to sbus::Sender", "[tls]") {
  // The wrong-name broker first: its worker cannot connect and keeps trying,
  // with the reason in the log, while the good broker's worker serves.
  SbusdOptions options;
  options.brokers = {uri("wrong-name"), uri("good")};
  options.extra_yaml = tls_yaml();
  options.wait_ready = false;
  SbusdProcess sbusd(options);
  wait_served(sbusd, tls_sender({uri("good")}));

  SECTION("sbus::Sender, failing over from the broker it cannot trust to the next") {
    sbus::Sender sender(tls_sender({uri("wrong-name"), uri("good")}));
    const sbus::CallResult result = sender.call(sbusd.address("math.add"), "[1, 2]", 10s);
    CHECK(result.ok());
    CHECK(result.message == "3");
    CHECK(sender.connected_broker() == redacted("good"));
  }
  SECTION("sbus::Sender by IP address, which the certificate lists besides localhost") {
    sbus::Sender sender(tls_sender({uri("good", "127.0.0.1")}));
    const sbus::CallResult result = sender.call(sbusd.address("math.add"), "[3, 4]", 10s);
    CHECK(result.ok());
    CHECK(result.message == "7");
  }
  SECTION("the sbus CLI with --tls-ca, --tls-cert and --tls-key") {
    const ProcessResult result = run_cli({"call", sbusd.address("math.add"), "[2, 3]", "--broker", uri("good"),
                                          "--secret-file", sbusd.secret_file(), "--tls-ca", cert("ca.pem"),
                                          "--tls-cert", cert("client.pem"), "--tls-key", cert("client.key")});
    CHECK(result.exit_code == 0);
    CHECK(result.out == "5\n");
    CHECK(result.err.empty());
  }
  SECTION("a service calls another over amqps:// with the config's tls: settings (test.relay)") {
    sbus::Sender sender(tls_sender({uri("good")}));
    const std::string params = R"({"address":")" + sbusd.address("math.add") + R"(","params":[40,2]})";
    const sbus::CallResult result = sender.call(sbusd.address("test.relay"), params, 20s);
    INFO(result.error_code << ": " << result.message);
    CHECK(result.ok());
    CHECK(result.message == "42");
  }
  SECTION("the worker of an amqps:// broker maps sbus-tls.so with libssl and libcrypto; the supervisor none") {
    const pid_t worker = sbus_test::worker_pid_in_log(sbusd.log(), redacted("good"));
    REQUIRE(worker > 0);
    const std::set<std::string> worker_maps = sbus_test::mapped_libraries(worker);
    const std::set<std::string> supervisor_maps = sbus_test::mapped_libraries(sbusd.pid());
    for (const char* library : {"sbus-tls.so", "libssl.so", "libcrypto.so"}) {
      INFO(library);
      CHECK(sbus_test::maps_library(worker_maps, library));
      CHECK_FALSE(sbus_test::maps_library(supervisor_maps, library));
    }
  }
  SECTION(
      "the negotiated protocol is TLS 1.2 or newer, and the worker of the other broker says why it cannot connect") {
    const std::string refused =
        "TLS handshake with " + redacted("wrong-name") + " failed: certificate verify failed: hostname mismatch";
    CHECK(wait_until([&] { return sbusd.log().find(refused) != std::string::npos; }, 10s));
    const std::string tls_line = line_with(sbusd.log(), "TLS with " + redacted("good"));
    INFO(tls_line);
    CHECK((tls_line.find("TLSv1.3") != std::string::npos || tls_line.find("TLSv1.2") != std::string::npos));
  }
}

TEST_CASE("a broker the client cannot trust is refused, each time with its own reason", "[tls]") {
  // Each reason's words, to check that a refusal names its own and no other.
  const std::vector<std::string> reasons = {
      "unknown CA",          "name mismatch", "no client certificate", "client certificate refused",
      "certificate expired", "TLS version"};
  std::string expected;
  ProcessResult result;

  SECTION("a certificate no CA in ca_file signed: unknown CA") {
    result = cli_ping(uri("good"), cert("wrong-ca.pem"));
    expected = "unknown CA";
    CHECK_THAT(result.err, Contains("certificate verify failed"));
    CHECK_THAT(result.err, Contains("not in " + cert("wrong-ca.pem")));
  }
  SECTION("a certificate for another host name: name mismatch") {
    result = cli_ping(uri("wrong-name"), cert("ca.pem"));
    expected = "name mismatch";
    CHECK_THAT(result.err, Contains("certificate verify failed: hostname mismatch"));
    CHECK_THAT(result.err, Contains("DNS:wrong.example, not localhost"));
  }
  SECTION("a certificate for another IP address: name mismatch") {
    result = cli_ping(uri("wrong-name", "127.0.0.1"), cert("ca.pem"));
    expected = "name mismatch";
    CHECK_THAT(result.err, Contains("certificate verify failed: IP address mismatch"));
  }
  SECTION("no client certificate for a broker that demands one") {
    result = cli_ping(uri("good"), cert("ca.pem"), "");
    expected = "no client certificate";
    CHECK_THAT(result.err, Contains("certificate required"));
  }
  SECTION("a client certificate the broker's CA did not sign") {
    result = cli_ping(uri("good"), cert("ca.pem"), "wrong-client");
    expected = "client certificate refused";
    CHECK_THAT(result.err, Contains("alert unknown ca"));
    CHECK_THAT(result.err, Contains("does not trust the CA that signed " + cert("wrong-client.pem")));
  }
  SECTION("an expired certificate") {
    result = cli_ping(uri("expired"), cert("ca.pem"));
    expected = "certificate expired";
    CHECK_THAT(result.err, Contains("certificate verify failed: certificate has expired"));
    CHECK_THAT(result.err, Contains("valid until Jan  2 00:00:00 2020 GMT"));
  }

  SECTION("a server that speaks only TLS 1.1: TLS version") {
    result = cli_ping(uri("old-tls"), cert("ca.pem"));
    expected = "TLS version";
    CHECK_THAT(result.err, Contains("alert protocol version"));
  }

  INFO("sbus said: " << result.err);
  CHECK(result.exit_code == 4);
  CHECK_THAT(result.err, Contains("TLS handshake with amqps://guest@"));
  CHECK_THAT(result.err, Contains(expected));
  for (const std::string& other : reasons) {
    if (other != expected) CHECK_THAT(result.err, !Contains(other));
  }
}

TEST_CASE("with tls.verify false sbusd connects to a broker whose certificate is for another name, and warns",
          "[tls]") {
  SbusdOptions options;
  options.brokers = {uri("wrong-name")};
  options.extra_yaml = tls_yaml(false);
  options.wait_ready = false;
  SbusdProcess sbusd(options);
  sbus::SenderOptions sender_options = tls_sender({uri("wrong-name")});
  sender_options.tls_verify = false;
  wait_served(sbusd, sender_options);
  CHECK_THAT(line_with(sbusd.log(), "TLS verification is OFF for " + redacted("wrong-name")), Contains(" warn ["));

  SECTION("and so does the sbus CLI with --tls-insecure") {
    const ProcessResult result =
        run_cli({"call", sbusd.address("math.add"), "[4, 5]", "--broker", uri("wrong-name"), "--secret-file",
                 sbusd.secret_file(), "--tls-ca", cert("ca.pem"), "--tls-cert", cert("client.pem"), "--tls-key",
                 cert("client.key"), "--tls-insecure"});
    CHECK(result.exit_code == 0);
    CHECK(result.out == "9\n");
    CHECK_THAT(line_with(result.err, "TLS verification is OFF for " + redacted("wrong-name")), Contains(" warn ["));
  }
}

TEST_CASE("without its TLS module the sbus CLI refuses an amqps:// broker and names the module and the path", "[tls]") {
  const std::string missing = std::string(SBUS_BUILD_DIR) + "/no-such-folder/sbus-tls.so";
  const ProcessResult result = sbus_test::run_program(
      "/usr/bin/env", {"SBUS_TLS_MODULE=" + missing, std::string(SBUS_BUILD_DIR) + "/bin/sbus", "ping", "no-such-node",
                       "--broker", uri("good"), "--tls-ca", cert("ca.pem"), "--timeout", "2"});
  INFO("sbus said: " << result.err);
  CHECK(result.exit_code != 0);
  CHECK_THAT(result.err, Contains("TLS setup for " + redacted("good") +
                                  " failed: the TLS module sbus-tls.so cannot "
                                  "be loaded (" +
                                  missing + ": no such file)"));
}

TEST_CASE("sbusd --check of a config with an amqps:// broker checks that the TLS module loads", "[tls]") {
  sbus_test::TempDir dir;
  const std::string secret_file = sbus_test::write_secret(dir.path());
  const std::string config = dir.file("sbusd.yaml");
  sbus_test::write_file(config, "node: " + sbus_test::unique_node() + "\nbrokers: [" + uri("good") +
                                    "]\nsecret_file: " + secret_file + "\nstate_dir: " + dir.file("state") +
                                    "\nplugin_dir: " + SBUS_BUILD_DIR + "/plugins\n" + tls_yaml() +
                                    "services:\n  - name: math.add\n    plugin: math\n");
  const std::string sbusd = std::string(SBUS_BUILD_DIR) + "/bin/sbusd";
  SECTION("with the module beside the worker module: no problem") {
    const ProcessResult result = sbus_test::run_program(sbusd, {"--check", "--config", config});
    INFO(result.out << result.err);
    CHECK(result.exit_code == 0);
  }
  SECTION("without it: the problem names the config, the module and the path tried") {
    const std::string missing = dir.file("nowhere/sbus-tls.so");
    const ProcessResult result =
        sbus_test::run_program("/usr/bin/env", {"SBUS_TLS_MODULE=" + missing, sbusd, "--check", "--config", config});
    INFO(result.out << result.err);
    CHECK(result.exit_code == 1);
    CHECK_THAT(result.out + result.err,
               Contains(config +
                        ": brokers: an amqps:// broker needs TLS, but the TLS module sbus-tls.so cannot be "
                        "loaded (" +
                        missing + ": no such file)"));
  }
}
