// hmac-sha256 tokens end to end: signed calls are served, and a tampered
// call, a replayed call and an old timestamp are each refused with their own
// error code; the accept list decides which modes an agent takes.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include <sbus/sender.hpp>

#include "common/token.hpp"
#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::between;
using sbus_test::RawAmqp;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;

namespace {

std::string event_body(const std::string& id, const std::string& token, const std::string& params) {
  return "<?xml version=\"1.0\"?>\n<event version=\"1\"><id>" + id + "</id><token>" + token +
         "</token><catgory>math</catgory><service>add</service><params><![CDATA[" + params +
         "]]></params></event>";
}

struct Answer {
  std::string code;
  std::string message;
};

// Publishes `body` as a call to NODE and returns the reply's code and text.
Answer call_raw(RawAmqp& raw, const std::string& reply_queue, const std::string& node, const std::string& body) {
  raw.publish("py-servicebus", node, body, reply_queue, "c-" + std::to_string(std::rand()));
  std::optional<RawAmqp::Message> reply = raw.receive(10s);
  REQUIRE(reply.has_value());
  Answer answer;
  answer.message = between(reply->body, "<![CDATA[", "]]>").value_or("");
  if (reply->body.find("status=\"error\"") != std::string::npos) {
    answer.code = between(reply->body, "code=\"", "\"").value_or("?");
  }
  return answer;
}

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TEST_CASE("hmac-sha256 calls are served and tampered, replayed or old calls are refused", "[token][hmac]") {
  SbusdOptions options;
  options.extra_yaml = "accept: [hmac-sha256]\nmax_skew: 60\n";
  SbusdProcess sbusd(options);

  SECTION("through the sender library and the CLI") {
    sbus::SenderOptions sender_options = sbusd.sender_options();
    sender_options.token = "hmac-sha256";
    sbus::Sender sender(sender_options);
    sbus::CallResult result = sender.call(sbusd.address("math.add"), "[20,22]", 10s);
    CHECK(result.ok());
    CHECK(result.message == "42");
  }

  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  const std::string secret = sbus_test::kSecret;

  SECTION("a correct signature is accepted once; the same call again is a replay") {
    const std::string token = sbus::make_hmac_token(secret, "e-1", "math", "add", "[1,2]");
    const std::string body = event_body("e-1", token, "[1,2]");
    Answer first = call_raw(raw, reply_queue, sbusd.node(), body);
    CHECK(first.code.empty());
    CHECK(first.message == "3");
    Answer again = call_raw(raw, reply_queue, sbusd.node(), body);
    CHECK(again.code == "replayed");
  }
  SECTION("params changed after signing") {
    const std::string token = sbus::make_hmac_token(secret, "e-2", "math", "add", "[1,2]");
    Answer answer = call_raw(raw, reply_queue, sbusd.node(), event_body("e-2", token, "[1,3]"));
    CHECK(answer.code == "invalid_signature");
  }
  SECTION("signed with another secret") {
    const std::string token = sbus::make_hmac_token("not the secret", "e-3", "math", "add", "[1,2]");
    Answer answer = call_raw(raw, reply_queue, sbusd.node(), event_body("e-3", token, "[1,2]"));
    CHECK(answer.code == "invalid_signature");
    CHECK(answer.message.find(secret) == std::string::npos);
  }
  SECTION("a timestamp an hour old, correctly signed") {
    const std::int64_t old = now_seconds() - 3600;
    const std::string nonce = "00112233445566778899aabbccddeeff";
    const std::string token = "hmac-sha256:" + std::to_string(old) + ":" + nonce + ":" +
                              sbus::hmac_signature(secret, "e-4", "math", "add", "[1,2]", old, nonce);
    Answer answer = call_raw(raw, reply_queue, sbusd.node(), event_body("e-4", token, "[1,2]"));
    CHECK(answer.code == "token_expired");
  }
  SECTION("a compat token is refused by an agent that accepts only hmac-sha256") {
    Answer answer = call_raw(raw, reply_queue, sbusd.node(),
                             event_body("e-5", sbus_test::py_token(secret, sbus_test::local_date()), "[1,2]"));
    CHECK(answer.code == "invalid_token");
  }
}

TEST_CASE("during a migration an agent accepts both token modes", "[token][hmac]") {
  SbusdOptions options;
  options.extra_yaml = "accept: [compat, hmac-sha256]\n";
  SbusdProcess sbusd(options);
  for (const char* mode : {"compat", "hmac-sha256"}) {
    INFO(mode);
    sbus::SenderOptions sender_options = sbusd.sender_options();
    sender_options.token = mode;
    sbus::Sender sender(sender_options);
    CHECK(sender.call(sbusd.address("math.add"), "[1,1]", 10s).message == "2");
  }
}

TEST_CASE("a plugin's own calls are signed as the config's token says", "[token][hmac][plugin]") {
  SbusdOptions options;
  const bool hmac = GENERATE(true, false);
  INFO((hmac ? "token: hmac-sha256" : "token: compat (the default)"));
  options.extra_yaml = std::string("accept: [hmac-sha256]\n") + (hmac ? "token: hmac-sha256\n" : "");
  SbusdProcess sbusd(options);
  sbus::SenderOptions sender_options = sbusd.sender_options();
  sender_options.token = "hmac-sha256";
  sbus::Sender sender(sender_options);
  // test.relay calls math.add on the same agent, which takes only hmac-sha256.
  const std::string params = R"({"address":")" + sbusd.address("math.add") + R"(","params":[40,2]})";
  sbus::CallResult result = sender.call(sbusd.address("test.relay"), params, 20s);
  if (hmac) {
    INFO(result.error_code << ": " << result.message);
    CHECK(result.ok());
    CHECK(result.message == "42");
  } else {
    CHECK(result.error_code == "invalid_token");
  }
}
