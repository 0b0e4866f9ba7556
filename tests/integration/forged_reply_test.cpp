// Forged replies and the least-privilege broker setup (docs/security.md).
//
// An account that may bind a queue to the exchange gets a copy of every call
// (reply_to and correlation id) and can answer first. With hmac-sha256-v2
// the sender drops such replies and waits for the agent's signed one; with
// separate broker users for agents and senders, a sender account cannot bind
// a queue to the exchange nor consume a node's queue at all.
#include <catch2/catch.hpp>

#include <amqp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <sbus/sender.hpp>

#include "harness.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
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
      dropped_said += result.err.find("dropped 1 reply(ies) that failed the hmac-sha256-v2 signature check") !=
                      std::string::npos;
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
