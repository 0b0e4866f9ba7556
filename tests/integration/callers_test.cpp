// Who may call what, on a real broker: callers with keys of their own, the
// policy's allow/deny matrix, a py-servicebus sender restricted by it, the
// node's own identity, key rotation by reload, and the audit lines.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace sbus_test;

namespace {

constexpr std::string_view kExchange = "py-servicebus";

std::string write_key(const TempDir& dir, const std::string& name, const std::string& key) {
  const std::string path = dir.file(name);
  write_file(path, key + "\n");
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  return path;
}

sbus::SenderOptions as_caller(const SbusdProcess& sbusd, const std::string& caller, const std::string& key) {
  sbus::SenderOptions options = sbusd.sender_options();
  options.caller = caller;
  options.caller_key = key;
  options.token = "hmac-sha256-v2";
  return options;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string services(const TempDir& dir) {
  return "  - {name: math.add, plugin: math, audit: true}\n"
         "  - {name: test.echo, plugin: test}\n"
         "  - {name: test.fail, plugin: test}\n"
         "  - {name: test.whoami, plugin: test}\n"
         "  - {name: test.relay, plugin: test}\n"
         "  - {name: test.record, plugin: test, kind: message, options: {file: " +
         dir.file("record.log") + "}}\n";
}

}  // namespace

TEST_CASE("The policy's allow/deny matrix holds on a real broker, for callers and a py-servicebus sender alike",
          "[callers][policy]") {
  TempDir keys;
  const std::string billing = "billing's key, long enough", ops = "ops-eu's key, long enough",
                    batch = "batch's key, long enough", self = "the node's own key, long enough";
  SbusdOptions options;
  options.services_yaml = services(keys);
  options.extra_yaml =
      "accept: [compat, hmac-sha256-v2]\n"
      "callers:\n"
      "  - {id: billing, key_file: " +
      write_key(keys, "billing", billing) +
      "}\n"
      "  - {id: ops-eu, key_file: " +
      write_key(keys, "ops", ops) +
      "}\n"
      "  - {id: batch, key_file: " +
      write_key(keys, "batch", batch) +
      "}\n"
      "  - {id: node-self, key_file: " +
      write_key(keys, "self", self) +
      "}\n"
      "identity: {id: node-self, key_file: " +
      keys.file("self") +
      "}\n"
      "policy:\n"
      "  - allow: {callers: [billing], services: [\"math.*\", test.echo, test.relay]}\n"
      "  - allow: {callers: [\"ops*\"], services: [\"*\"]}\n"
      "  - allow: {callers: [batch], services: [\"test.*\"], kinds: [message]}\n"
      "  - allow: {callers: [node-self], services: [test.whoami]}\n"
      "  - allow: {callers: [py-servicebus], services: [test.echo]}\n"
      "  - deny: {callers: [\"*\"], services: [test.fail]}\n";
  SbusdProcess sbusd(options);
  INFO("sbusd log:\n" << sbusd.log());

  struct Row {
    const char* caller;
    const std::string* key;
    bool add, echo, fail, whoami;
  };
  const Row rows[] = {
      {"billing", &billing, true, true, false, false},
      {"ops-eu", &ops, true, true, false, true},      // the deny of test.fail wins over ops*'s "*"
      {"batch", &batch, false, false, false, false},  // allowed messages only
  };
  for (const Row& row : rows) {
    sbus::Sender sender(as_caller(sbusd, row.caller, *row.key));
    const auto check = [&](const char* service, const char* params, bool allowed, const std::string& answer) {
      INFO(row.caller << " -> " << service);
      const sbus::CallResult result = sender.call(sbusd.address(service), params, 10s);
      if (allowed) {
        CHECK(result.ok());
        CHECK(result.message == answer);
      } else {
        CHECK(result.error_code == "forbidden");
        CHECK(result.message.find(std::string("caller ") + row.caller + " may not reach " + service) !=
              std::string::npos);
      }
    };
    check("math.add", "[1,2]", row.add, "3");
    check("test.echo", "[\"hi\"]", row.echo, "[\"hi\"]");
    check("test.fail", "[]", row.fail, "");
    check("test.whoami", "[]", row.whoami, std::string("\"") + row.caller + "\"");
  }

  SECTION("a plugin's sender signs as the node's own identity") {
    sbus::Sender sender(as_caller(sbusd, "billing", billing));
    const std::string params = "{\"address\": \"" + sbusd.address("test.whoami") + "\", \"params\": []}";
    const sbus::CallResult result = sender.call(sbusd.address("test.relay"), params, 10s);
    CHECK(result.ok());
    CHECK(result.message == "\"node-self\"");
  }

  SECTION("a py-servicebus sender (the shared secret) is restricted like any caller") {
    RawAmqp raw;
    const std::string reply_queue = raw.declare_reply_queue();
    raw.publish(kExchange, sbusd.node(), py_call_body("py-1", kSecret, "math", "add", "[1,2]"), reply_queue, "c-1");
    std::optional<RawAmqp::Message> denied = raw.receive(10s);
    REQUIRE(denied);
    CHECK(denied->body.find("code=\"forbidden\"") != std::string::npos);
    CHECK(denied->body.find("caller py-servicebus may not reach math.add") != std::string::npos);
    raw.publish(kExchange, sbusd.node(), py_call_body("py-2", kSecret, "test", "echo", "[7]"), reply_queue, "c-2");
    std::optional<RawAmqp::Message> allowed = raw.receive(10s);
    REQUIRE(allowed);
    CHECK(allowed->body.find("<message><![CDATA[[7]]]></message>") != std::string::npos);
    CHECK(allowed->body.find("forbidden") == std::string::npos);
  }

  SECTION("a denied message goes to the error queue with its reason") {
    sbus::Sender sender(as_caller(sbusd, "billing", billing));
    sender.send(sbusd.address("test.record"), "[1]");
    std::vector<sbus::DeadLetter> letters;
    REQUIRE(wait_until(
        [&] {
          letters = sender.list_errors(sbusd.node());
          return !letters.empty();
        },
        10s, 100ms));
    CHECK(letters[0].header("x-sbus-error").find("caller billing may not reach test.record") != std::string::npos);
    // batch may send messages to test.*: it is recorded.
    sbus::Sender batch_sender(as_caller(sbusd, "batch", batch));
    batch_sender.send(sbusd.address("test.record"), "[\"from batch\"]");
    CHECK(wait_until([&] { return read_file(keys.file("record.log")).find("from batch") != std::string::npos; }, 10s));
  }

  SECTION("the audit lines hold caller, address, event id and decision") {
    REQUIRE(wait_until([&] { return count(sbusd.log(), "audit: caller=") >= 9; }, 10s));
    const std::string log = sbusd.log();
    // math.add is audited: the allowed calls of billing and ops-eu, and the denial of batch.
    CHECK(count(log, "audit: caller=billing address=" + sbusd.address("math.add") + " event=") == 1);
    CHECK(count(log, "audit: caller=ops-eu address=" + sbusd.address("math.add") + " event=") == 1);
    CHECK(log.find("address=" + sbusd.address("math.add") + " event=") != std::string::npos);
    CHECK(log.find(" kind=call decision=allow") != std::string::npos);
    CHECK(log.find("audit: caller=ops-eu address=" + sbusd.address("test.fail")) != std::string::npos);
    CHECK(log.find("kind=call decision=deny reason=\"caller ops-eu may not reach test.fail: denied by policy[5]") !=
          std::string::npos);
    CHECK(count(log, "audit: caller=batch ") == 4);
    // Not audited: an allowed call to a service without audit: true.
    CHECK(log.find("audit: caller=billing address=" + sbusd.address("test.echo")) == std::string::npos);
  }
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("A caller's key rotates by reload: both keys valid, then the old one refused, no call dropped",
          "[callers][reload]") {
  TempDir keys;
  const std::string old_key = "ops' old key, long enough", new_key = "ops' new key, long enough";
  const std::string old_file = write_key(keys, "old", old_key), new_file = write_key(keys, "new", new_key);
  SbusdOptions options;
  options.services_yaml = services(keys);
  options.extra_yaml =
      "accept: [hmac-sha256-v2]\ntoken: hmac-sha256-v2\ncallers:\n  - {id: ops, key_file: " + old_file + "}\n";
  SbusdProcess sbusd(options);
  INFO("sbusd log:\n" << sbusd.log());
  const std::string yaml = read_file(sbusd.config_path());
  const auto reload = [&](const std::string& key_files) {
    std::string text = yaml;
    const std::string from = "key_file: " + old_file;
    text.replace(text.find(from), from.size(), key_files);
    write_file(sbusd.config_path(), text);
    sbusd.signal(SIGHUP);
  };
  sbus::Sender with_old(as_caller(sbusd, "ops", old_key));
  sbus::Sender with_new(as_caller(sbusd, "ops", new_key));
  CHECK(with_old.call(sbusd.address("math.add"), "[1,1]", 10s).message == "2");
  CHECK(with_new.call(sbusd.address("math.add"), "[1,1]", 10s).error_code == "invalid_signature");

  // A key file that cannot be read: the reload is refused, the old keys stay.
  reload("key_files: [" + old_file + ", " + keys.file("absent") + "]");
  REQUIRE(wait_until([&] { return sbusd.log().find("reload failed") != std::string::npos; }, 20s));
  CHECK(sbusd.log().find("callers[0].key_files[1]: ") != std::string::npos);
  CHECK(with_old.call(sbusd.address("math.add"), "[1,2]", 10s).message == "3");

  reload("key_files: [" + old_file + ", " + new_file + "]");
  CHECK(wait_until([&] { return with_new.call(sbusd.address("math.add"), "[2,2]", 10s).message == "4"; }, 20s, 200ms));
  CHECK(with_old.call(sbusd.address("math.add"), "[2,3]", 10s).message == "5");
  CHECK(sbusd.log().find("audit: caller=ops address=- event=- kind=reload decision=keys-changed") != std::string::npos);

  // The old key goes: calls with the new one keep being answered meanwhile.
  reload("key_file: " + new_file);
  int answered = 0, failed = 0;
  const bool refused = wait_until(
      [&] {
        const sbus::CallResult fresh = with_new.call(sbusd.address("math.add"), "[3,4]", 10s);
        (fresh.message == "7" ? answered : failed) += 1;
        return with_old.call(sbusd.address("math.add"), "[1,1]", 10s).error_code == "invalid_signature";
      },
      20s, 100ms);
  CHECK(refused);
  CHECK(answered > 0);
  CHECK(failed == 0);
  CHECK(with_new.call(sbusd.address("math.add"), "[5,5]", 10s).message == "10");

  SECTION("the CLI signs as a caller with --caller and --key-file") {
    const std::vector<std::string> broker = {"--broker", broker_uri()};
    auto args = [&](const std::string& key_file) {
      std::vector<std::string> all = {"call",  sbusd.address("math.add"), "[6,6]", "--caller", "ops", "--key-file",
                                      key_file};
      all.insert(all.end(), broker.begin(), broker.end());
      return all;
    };
    const ProcessResult fresh = run_cli(args(new_file));
    INFO(fresh.err);
    CHECK(fresh.exit_code == 0);
    CHECK(fresh.out == "12\n");
    const ProcessResult stale = run_cli(args(old_file));
    CHECK(stale.exit_code == 1);
    CHECK(stale.err.find("invalid_signature") != std::string::npos);
    std::vector<std::string> no_key = {"call", sbusd.address("math.add"), "[1,1]", "--caller", "ops"};
    no_key.insert(no_key.end(), broker.begin(), broker.end());
    const ProcessResult usage = run_cli(no_key);
    CHECK(usage.exit_code == 2);
    CHECK(usage.err.find("--caller and --key-file go together") != std::string::npos);
  }
  CHECK(sbusd.stop() == 0);
}

TEST_CASE("sbusd --check names bad callers and rules with file and line, and warns of a rule for no service",
          "[callers][check]") {
  TempDir dir;
  const std::string key = write_key(dir, "billing", "billing's key, long enough");
  const std::string head = "node: check-node\nbrokers: [" + broker_uri() +
                           "]\nsecret_file: " + write_secret(dir.path()) + "\nstate_dir: " + dir.file("state") +
                           "\nplugin_dir: " SBUS_BUILD_DIR
                           "/plugins\naccept: [compat, hmac-sha256-v2]\n"
                           "services:\n  - {name: math.add, plugin: math}\n";
  write_file(dir.file("bad.yaml"), head + "callers:\n  - {id: billing, key_file: " + key +
                                       "}\n  - {id: \"no/slash\", key_file: " + dir.file("absent") +
                                       "}\npolicy:\n  - allow: {callers: [\"bil[\"], services: [\"math.*\"]}\n");
  const ProcessResult bad = run_program(SBUS_BUILD_DIR "/bin/sbusd", {"--config", dir.file("bad.yaml"), "--check"});
  INFO(bad.err);
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find(dir.file("bad.yaml") + ":11: callers[1].id: 'no/slash' is not a caller id") != std::string::npos);
  CHECK(bad.err.find(dir.file("bad.yaml") + ":11: callers[1].key_file: ") != std::string::npos);
  CHECK(bad.err.find(dir.file("bad.yaml") + ":13: policy[0].allow.callers[0]: malformed glob 'bil['") !=
        std::string::npos);

  write_file(dir.file("good.yaml"), head + "callers:\n  - {id: billing, key_file: " + key +
                                        "}\npolicy:\n  - allow: {callers: [billing], services: [\"math.*\", "
                                        "\"ledger.*\"]}\n");
  const ProcessResult good = run_program(SBUS_BUILD_DIR "/bin/sbusd", {"--config", dir.file("good.yaml"), "--check"});
  INFO(good.err);
  CHECK(good.exit_code == 0);
  CHECK(good.err.find("warning: " + dir.file("good.yaml") +
                      ":12: policy[0].allow.services[1]: 'ledger.*' matches no service of this node") !=
        std::string::npos);
}

// A worker that stops gives the calls it took but had not started back to
// the broker; the next worker runs them. Their nonces were taken when they
// came, and must not make them replays then.
TEST_CASE("Signed calls a stopping worker had taken but not started are run by the next worker, not refused as replays",
          "[callers][stop]") {
  SbusdOptions options;
  options.services_yaml = "  - {name: test.sleep, plugin: test}\n  - {name: test.echo, plugin: test}\n";
  options.extra_yaml = "accept: [hmac-sha256-v2]\ntoken: hmac-sha256-v2\n";
  SbusdProcess sbusd(options);
  sbus::SenderOptions signed_calls = sbusd.sender_options();
  signed_calls.token = "hmac-sha256-v2";
  sbus::Sender sender(signed_calls);
  REQUIRE(sender.call(sbusd.address("test.echo"), "[0]", 10s).ok());
  const std::string broker = "amqp://guest@127.0.0.1:" + std::to_string(broker_port()) + "/%2f";
  const pid_t worker = worker_pid_in_log(sbusd.log(), broker);
  REQUIRE(worker > 0);

  // A runs on test.sleep's thread; B waits behind it in the worker. The
  // echo's answer, sent after both, means the worker has read them.
  // A sender each: a call holds its sender until it is answered.
  sbus::CallResult a, b;
  std::thread first([&] { a = sbus::Sender(signed_calls).call(sbusd.address("test.sleep"), "[2]", 30s); });
  std::this_thread::sleep_for(500ms);
  std::thread second([&] { b = sbus::Sender(signed_calls).call(sbusd.address("test.sleep"), "[0]", 30s); });
  std::this_thread::sleep_for(500ms);
  const bool read = sender.call(sbusd.address("test.echo"), "[1]", 10s).ok();
  const bool stopped = ::kill(worker, SIGTERM) == 0;
  first.join();
  second.join();
  REQUIRE(read);
  REQUIRE(stopped);
  INFO("sbusd log:\n" << sbusd.log());
  CHECK(a.ok());
  CHECK(b.ok());
  CHECK(b.message == "0");
  CHECK(sbusd.log().find("replay refused") == std::string::npos);
}

// The crash journal knows the message as started, so its redelivery's seen
// nonce is excused (admission), as a call's is.
TEST_CASE("A signed message waiting out its retry back-off when its worker stops is run by the next worker",
          "[callers][stop]") {
  SbusdOptions options;
  options.services_yaml = "  - {name: test.fail_message, plugin: test, kind: message}\n";
  // Back-off 100 ms, doubling to 5 s: the fifth failure waits 1.6 s, the
  // seventh 5 s.
  options.extra_yaml = "accept: [hmac-sha256-v2]\ntoken: hmac-sha256-v2\nmax_retries: 20\n";
  // A back-off is waited out within the drain, as a running call is: the
  // drain timeout gives the message up to the broker.
  options.drain_timeout_seconds = 2;
  SbusdProcess sbusd(options);
  sbus::SenderOptions signed_messages = sbusd.sender_options();
  signed_messages.token = "hmac-sha256-v2";
  sbus::Sender sender(signed_messages);
  const std::string broker = "amqp://guest@127.0.0.1:" + std::to_string(broker_port()) + "/%2f";
  const pid_t worker = worker_pid_in_log(sbusd.log(), broker);
  REQUIRE(worker > 0);

  sender.send(sbusd.address("test.fail_message"), "[1]");
  REQUIRE(wait_until([&] { return sbusd.log().find("attempt 6 failed") != std::string::npos; }, 20s));
  // In its back-off of 5 s now: the drain's end leaves it unacked.
  REQUIRE(::kill(worker, SIGTERM) == 0);
  const auto attempts_of_one_worker = [&] {
    std::size_t count = 0;
    for (std::size_t at = 0; (at = sbusd.log().find("attempt 1 failed", at)) != std::string::npos; ++at) ++count;
    return count;
  };
  // The next worker gets it from the broker and runs it from its first attempt.
  const bool run_again = wait_until([&] { return attempts_of_one_worker() >= 2; }, 20s);
  INFO("sbusd log:\n" << sbusd.log());
  CHECK(run_again);
  CHECK(sbusd.log().find("replay refused") == std::string::npos);
  CHECK(sbusd.log().find("nonce seen before") == std::string::npos);
}
