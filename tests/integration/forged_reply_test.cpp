// Forged replies and the least-privilege broker setup (docs/security.md).
//
// An account that may bind a queue to the exchange gets a copy of every call
// (reply_to and correlation id) and can answer first. With hmac-sha256-v2
// the sender drops such replies and waits for the agent's signed one; with
// separate broker users for agents and senders, a sender account cannot bind
// a queue to the exchange nor consume a node's queue at all.
#include <catch2/catch.hpp>

#include <amqp.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <sbus/sender.hpp>

#include "harness.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using sbus_test::BrokerUsers;
using sbus_test::RawAmqp;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;

namespace {

// A rogue consumer with a raw rabbitmq-c client: a queue of its own bound to
// the exchange with the node's routing key, answering every call it sees at
// once with `forged` (a whole <response> body; ID stands for the call's id).
class RogueResponder {
 public:
  RogueResponder(const std::string& node, std::string forged) : forged_(std::move(forged)) {
    thread_ = std::thread([this, node] { run(node); });
    if (!sbus_test::wait_until([this] { return ready_.load() || failed_.load(); }, 10s) || failed_) {
      stop_ = true;
      thread_.join();
      throw std::runtime_error("the rogue consumer could not bind its queue: " + error_);
    }
  }
  ~RogueResponder() {
    stop_ = true;
    thread_.join();
  }
  int answered() const { return answered_.load(); }

 private:
  void run(const std::string& node) {
    try {
      RawAmqp raw;
      const std::string queue = raw.declare_reply_queue();  // exclusive, server-named, consumed
      amqp_queue_bind(raw.get(), 1, amqp_cstring_bytes(queue.c_str()), amqp_cstring_bytes("py-servicebus"),
                      amqp_cstring_bytes(node.c_str()), amqp_empty_table);
      raw.check("bind the rogue queue");
      ready_ = true;
      while (!stop_) {
        std::optional<RawAmqp::Message> call = raw.receive(100ms);
        if (!call || !call->has_reply_to) continue;
        std::string body = forged_;
        const std::string id = sbus_test::between(call->body, "<id>", "</id>").value_or("");
        if (const std::size_t at = body.find("ID"); at != std::string::npos) body.replace(at, 2, id);
        raw.publish("", call->reply_to, body, {}, call->correlation_id);
        ++answered_;
      }
    } catch (const std::exception& e) {
      error_ = e.what();
      failed_ = true;
    }
  }

  std::string forged_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> ready_{false};
  std::atomic<bool> failed_{false};
  std::atomic<int> answered_{0};
  std::string error_;
  std::thread thread_;
};

constexpr const char* kForgedResult =
    "<?xml version=\"1.0\"?>\n<response status=\"ok\"><id>ID</id><message><![CDATA[666]]></message></response>";

}  // namespace

TEST_CASE("with hmac-sha256-v2 a rogue consumer's forged replies are dropped and the real answers printed",
          "[token][hmac][v2][forged]") {
  SbusdOptions options;
  options.extra_yaml = "accept: [hmac-sha256, hmac-sha256-v2]\n";
  SbusdProcess sbusd(options);
  RogueResponder rogue(sbusd.node(), kForgedResult);
  // test.sleep answers after 0.2 s: the rogue always answers first.
  const std::vector<std::string> call = {"call", sbusd.address("test.sleep"), "[0.2]", "--timeout", "10"};

  SECTION("20 calls of the sbus CLI with --token hmac-sha256-v2: 0 print the forged result") {
    int forged = 0;
    int real = 0;
    int dropped_said = 0;
    for (int i = 0; i < 20; ++i) {
      std::vector<std::string> args = call;
      for (const char* arg : {"--token", "hmac-sha256-v2"}) args.push_back(arg);
      for (const std::string& arg : sbusd.cli_args()) args.push_back(arg);
      const sbus_test::ProcessResult result = sbus_test::run_cli(args);
      INFO(result.err);
      CHECK(result.exit_code == 0);
      forged += result.out == "666\n";
      real += result.out == "0.2\n";
      dropped_said +=
          result.err.find("dropped 1 reply(ies) that failed the hmac-sha256-v2 signature check") != std::string::npos;
    }
    std::printf("hmac-sha256-v2: %d of 20 calls printed the forged result, %d the real one; the rogue answered %d\n",
                forged, real, rogue.answered());
    CHECK(forged == 0);
    CHECK(real == 20);
    CHECK(dropped_said == 20);
    CHECK(rogue.answered() >= 20);
  }
  SECTION("the attack is real: without v2 (hmac-sha256) the forged result is printed") {
    int forged = 0;
    for (int i = 0; i < 5; ++i) {
      std::vector<std::string> args = call;
      for (const char* arg : {"--token", "hmac-sha256"}) args.push_back(arg);
      for (const std::string& arg : sbusd.cli_args()) args.push_back(arg);
      forged += sbus_test::run_cli(args).out == "666\n";
    }
    std::printf("hmac-sha256 (v1): %d of 5 calls printed the forged result\n", forged);
    CHECK(forged > 0);
  }
  SECTION("the sender library counts what it dropped") {
    sbus::SenderOptions sender_options = sbusd.sender_options();
    sender_options.token = "hmac-sha256-v2";
    sbus::Sender sender(sender_options);
    for (int i = 0; i < 3; ++i) CHECK(sender.call(sbusd.address("test.sleep"), "[0.2]", 10s).message == "0.2");
    CHECK(sender.dropped_replies() == 3);
  }
}

TEST_CASE("a forged unsigned refusal is taken only as that error, never as a result", "[token][hmac][v2][forged]") {
  SbusdOptions options;
  options.extra_yaml = "accept: [hmac-sha256-v2]\n";
  SbusdProcess sbusd(options);
  RogueResponder rogue(sbusd.node(),
                       "<?xml version=\"1.0\"?>\n<response status=\"error\" code=\"invalid_token\"><id>ID</id>"
                       "<message><![CDATA[Token not valid!]]></message></response>");
  sbus::SenderOptions sender_options = sbusd.sender_options();
  sender_options.token = "hmac-sha256-v2";
  sbus::Sender sender(sender_options);
  const sbus::CallResult result = sender.call(sbusd.address("test.sleep"), "[0.2]", 10s);
  CHECK_FALSE(result.ok());
  CHECK(result.error_code == "invalid_token");
}

namespace {

// The method `what` on a fresh connection as `user` must be refused with
// 403 ACCESS_REFUSED.
void check_refused(const std::string& user, const std::string& what,
                   const std::function<void(amqp_connection_state_t)>& method) {
  INFO(user << ": " << what);
  RawAmqp raw(sbus_test::broker_port(), user, user);
  method(raw.get());
  CHECK_THROWS_WITH(raw.check(what), Contains("403") && Contains("ACCESS_REFUSED"));
}

}  // namespace

TEST_CASE(
    "with least-privilege broker users a sender can neither bind to the exchange nor consume a node's queue, "
    "and sbusd and sbus still work",
    "[forged][permissions]") {
  const std::string node = sbus_test::unique_node();
  const std::string tag = std::to_string(::getpid());
  const std::string agent = "sbus-agent-" + node;
  const std::string sender = "sbus-sender-" + tag;
  BrokerUsers users;
  // docs/security.md, "Broker users": the agent of NODE may declare the
  // exchange and its own queues, publish replies (amq.default) and calls of
  // its plugins, declare and bind to the discovery exchange, and declare the
  // levels of deferred delivery; a sender may only publish to the exchange,
  // the discovery exchange and the levels.
  users.add(agent, "^(py-servicebus|py-servicebus\\.sbus\\.discover|" + node + "|" + node + "\\..+|sbus\\.delay\\..+)$",
            "^(py-servicebus|amq\\.default|" + node + "|" + node + "\\..+|sbus\\.delay\\..+)$",
            "^(py-servicebus|py-servicebus\\.sbus\\.discover|" + node + "|" + node + "\\..+|sbus\\.delay\\..+)$");
  users.add(sender, "^$", "^(py-servicebus|py-servicebus\\.sbus\\.discover|sbus\\.delay\\.[0-9]+)$", "^$");
  // A py-servicebus sender declares a server-named reply queue per call.
  const std::string py_sender = "sbus-py-sender-" + tag;
  users.add(py_sender, "^amq\\.gen-.*", "^py-servicebus$", "^amq\\.gen-.*");

  SbusdOptions options;
  options.node = node;
  options.brokers = {BrokerUsers::uri(agent)};
  options.extra_yaml = "accept: [hmac-sha256-v2]\ntoken: hmac-sha256-v2\n";
  SbusdProcess sbusd(options);

  // Every CLI verb a sender uses, as the sender user.
  const auto cli = [&](std::vector<std::string> args) {
    for (const std::string& arg : {std::string("--broker"), BrokerUsers::uri(sender), std::string("--secret-file"),
                                   sbusd.secret_file(), std::string("--token"), std::string("hmac-sha256-v2")}) {
      args.push_back(arg);
    }
    return sbus_test::run_cli(args);
  };
  const sbus_test::ProcessResult call = cli({"call", sbusd.address("math.add"), "[1,2]"});
  INFO(call.err << "\nsbusd log:\n" << sbusd.log());
  CHECK(call.exit_code == 0);
  CHECK(call.out == "3\n");
  CHECK(cli({"ping", node}).exit_code == 0);
  CHECK(cli({"stats", node}).exit_code == 0);
  CHECK(cli({"services", node}).exit_code == 0);
  const sbus_test::ProcessResult discover = cli({"discover", "--wait", "1"});
  INFO(discover.err);
  CHECK(discover.exit_code == 0);
  CHECK(discover.out.find(node) != std::string::npos);
  CHECK(cli({"send", sbusd.address("test.record"), "[\"least privilege\"]"}).exit_code == 0);
  CHECK(sbus_test::wait_until(
      [&] { return sbus_test::read_file(sbusd.record_file()).find("least privilege") != std::string::npos; }, 10s));
  // Deferred delivery: the agent declared the levels, the sender only
  // publishes into them.
  const sbus_test::ProcessResult deferred =
      cli({"send", sbusd.address("test.record"), "[\"deferred least privilege\"]", "--delay", "50ms"});
  INFO(deferred.err << "\nsbusd log:\n" << sbusd.log());
  CHECK(deferred.exit_code == 0);
  CHECK(sbus_test::wait_until(
      [&] { return sbus_test::read_file(sbusd.record_file()).find("deferred least privilege") != std::string::npos; },
      10s));
  // A plugin's own call, through the agent's account.
  const sbus_test::ProcessResult relay = cli(
      {"call", sbusd.address("test.relay"), R"({"address":")" + sbusd.address("math.add") + R"(","params":[40,2]})"});
  INFO(relay.err);
  CHECK(relay.out == "42\n");

  // What a rogue sender account would need for the two attacks.
  check_refused(sender, "declare a queue of its own", [](amqp_connection_state_t c) {
    amqp_queue_declare(c, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
  });
  check_refused(sender, "bind the node's queue to the exchange under another key", [&](amqp_connection_state_t c) {
    amqp_queue_bind(c, 1, amqp_cstring_bytes(node.c_str()), amqp_cstring_bytes("py-servicebus"),
                    amqp_cstring_bytes("elsewhere"), amqp_empty_table);
  });
  check_refused(sender, "consume the node's queue", [&](amqp_connection_state_t c) {
    amqp_basic_consume(c, 1, amqp_cstring_bytes(node.c_str()), amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
  });
  check_refused(sender, "consume the node's error queue", [&](amqp_connection_state_t c) {
    const std::string error_queue = node + ".error";
    amqp_basic_consume(c, 1, amqp_cstring_bytes(error_queue.c_str()), amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
  });
  // The py-servicebus sender's account: its calls are answered, and its own
  // reply queue cannot be bound to the exchange.
  {
    RawAmqp py(sbus_test::broker_port(), py_sender, py_sender);
    const std::string reply_queue = py.declare_reply_queue();
    py.publish("py-servicebus", node, sbus_test::py_call_body("py-lp-1", sbus_test::kSecret, "math", "add", "[2,3]"),
               reply_queue, "corr-lp-1");
    // The agent accepts only hmac-sha256-v2: refused, but answered.
    std::optional<RawAmqp::Message> reply = py.receive(10s);
    REQUIRE(reply.has_value());
    CHECK_THAT(reply->body, Contains("invalid_token"));
    amqp_queue_bind(py.get(), 1, amqp_cstring_bytes(reply_queue.c_str()), amqp_cstring_bytes("py-servicebus"),
                    amqp_cstring_bytes(node.c_str()), amqp_empty_table);
    CHECK_THROWS_WITH(py.check("bind its reply queue to the exchange"), Contains("403") && Contains("ACCESS_REFUSED"));
  }
  // Nor can one agent's account take another node's calls.
  const std::string other = sbus_test::unique_node();
  {
    RawAmqp guest;
    amqp_queue_declare(guest.get(), 1, amqp_cstring_bytes(other.c_str()), 0, 0, 0, 1, amqp_empty_table);
    guest.check("declare " + other);
  }
  check_refused(agent, "consume another node's queue", [&](amqp_connection_state_t c) {
    amqp_basic_consume(c, 1, amqp_cstring_bytes(other.c_str()), amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
  });
  CHECK(sbusd.log().find("ACCESS_REFUSED") == std::string::npos);
  CHECK(sbusd.stop() == 0);
}
