// hmac-sha256 tokens end to end: signed calls are served, and a tampered
// call, a replayed call and an old timestamp are each refused with their own
// error code; the accept list decides which modes an agent takes.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include <sbus/sender.hpp>

#include "protocol/token.hpp"
#include "protocol/wire_codec.hpp"
#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::between;
using sbus_test::RawAmqp;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;

namespace {

std::string event_body(const std::string& id, const std::string& token, const std::string& params) {
  return "<?xml version=\"1.0\"?>\n<event version=\"1\"><id>" + id + "</id><token>" + token +
         "</token><catgory>math</catgory><service>add</service><params><![CDATA[" + params + "]]></params></event>";
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
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
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

namespace {

// A call body signed hmac-sha256-v2 for `node`; `nonce` receives its nonce.
std::string v2_body(const std::string& node, const std::string& id, const std::string& params,
                    std::string* nonce = nullptr, const std::string& secret = sbus_test::kSecret) {
  const sbus::SignedCall call{node, id, "math", "add", params, ""};
  return event_body(id, sbus::make_hmac_v2_token(secret, call, nonce), params);
}

}  // namespace

TEST_CASE("hmac-sha256-v2 calls are served with replies signed for the call", "[token][hmac][v2]") {
  SbusdOptions options;
  options.extra_yaml = "accept: [hmac-sha256-v2]\n";
  SbusdProcess sbusd(options);

  SECTION("raw: the reply's signature is the one its caller expects") {
    RawAmqp raw;
    const std::string reply_queue = raw.declare_reply_queue();
    std::string nonce;
    raw.publish("py-servicebus", sbusd.node(), v2_body(sbusd.node(), "v2-1", "[1,2]", &nonce), reply_queue, "c-v2-1");
    std::optional<RawAmqp::Message> message = raw.receive(10s);
    REQUIRE(message.has_value());
    sbus::Reply reply;
    sbus::DecodeFailure failure;
    REQUIRE(sbus::decode_reply(message->body, &reply, &failure));
    CHECK(reply.message == "3");
    CHECK_FALSE(reply.signature.empty());
    CHECK(sbus::hmac_v2_reply_trusted(sbus_test::kSecret, sbusd.node(), nonce, reply));
    CHECK_FALSE(sbus::hmac_v2_reply_trusted(sbus_test::kSecret, sbusd.node(), std::string(32, '0'), reply));
  }
  SECTION("errors after the token check are signed too: the sender takes them") {
    sbus::SenderOptions sender_options = sbusd.sender_options();
    sender_options.token = "hmac-sha256-v2";
    sbus::Sender sender(sender_options);
    CHECK(sender.call(sbusd.address("math.add"), "[20,22]", 10s).message == "42");
    CHECK(sender.call(sbusd.address("test.nothing"), "[]", 10s).error_code == "unknown_service");
    CHECK(sender.call(sbusd.address("test.fail"), "[]", 10s).error_code == "service_failed");
    CHECK(sender.call(sbusd.address("sbus.stats"), "[]", 10s).ok());
    CHECK(sender.dropped_replies() == 0);
  }
  SECTION("the CLI") {
    std::vector<std::string> args = {"call", sbusd.address("math.add"), "[1,1]", "--token", "hmac-sha256-v2"};
    for (const std::string& arg : sbusd.cli_args()) args.push_back(arg);
    const sbus_test::ProcessResult result = sbus_test::run_cli(args);
    INFO(result.err);
    CHECK(result.exit_code == 0);
    CHECK(result.out == "2\n");
  }
}

TEST_CASE("a captured hmac-sha256-v2 body is refused by another node with the same secret", "[token][hmac][v2]") {
  SbusdOptions options;
  options.extra_yaml = "accept: [hmac-sha256-v2]\n";
  SbusdProcess a(options);
  SbusdProcess b(options);
  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  const std::string body = v2_body(a.node(), "v2-captured", "[1,2]");
  // Sent to B first: refused there, so A has not seen the nonce either.
  Answer at_b = call_raw(raw, reply_queue, b.node(), body);
  CHECK(at_b.code == "invalid_signature");
  Answer at_a = call_raw(raw, reply_queue, a.node(), body);
  CHECK(at_a.code.empty());
  CHECK(at_a.message == "3");
}

TEST_CASE("a captured hmac body is refused by the same node after an sbusd restart within the skew window",
          "[token][hmac][v2]") {
  sbus_test::TempDir state;
  SbusdOptions options;
  options.node = sbus_test::unique_node();
  options.state_dir = state.file("state");
  options.extra_yaml = "accept: [hmac-sha256, hmac-sha256-v2]\nmax_skew: 60\n";
  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  const std::string v2 = v2_body(options.node, "v2-restart", "[1,2]");
  const std::string v1_token = sbus::make_hmac_token(sbus_test::kSecret, "v1-restart", "math", "add", "[1,2]");
  const std::string v1 = event_body("v1-restart", v1_token, "[1,2]");
  {
    SbusdProcess first(options);
    CHECK(call_raw(raw, reply_queue, first.node(), v2).message == "3");
    CHECK(call_raw(raw, reply_queue, first.node(), v1).message == "3");
    CHECK(first.stop() == 0);
  }
  SbusdProcess second(options);
  Answer v2_again = call_raw(raw, reply_queue, second.node(), v2);
  CHECK(v2_again.code == "replayed");
  Answer v1_again = call_raw(raw, reply_queue, second.node(), v1);
  CHECK(v1_again.code == "replayed");
  // A fresh call is served as usual.
  CHECK(call_raw(raw, reply_queue, second.node(), v2_body(options.node, "v2-fresh", "[2,2]")).message == "4");
}

TEST_CASE("an hmac-sha256 (v1) call is accepted only while the YAML lists that mode", "[token][hmac][v2]") {
  const bool listed = GENERATE(true, false);
  INFO((listed ? "accept: [hmac-sha256, hmac-sha256-v2]" : "accept: [hmac-sha256-v2]"));
  SbusdOptions options;
  options.extra_yaml = listed ? "accept: [hmac-sha256, hmac-sha256-v2]\n" : "accept: [hmac-sha256-v2]\n";
  SbusdProcess sbusd(options);
  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  const std::string token = sbus::make_hmac_token(sbus_test::kSecret, "v1-old", "math", "add", "[1,2]");
  Answer answer = call_raw(raw, reply_queue, sbusd.node(), event_body("v1-old", token, "[1,2]"));
  if (listed) {
    CHECK(answer.code.empty());
    CHECK(answer.message == "3");
  } else {
    CHECK(answer.code == "invalid_token");
  }
}

TEST_CASE("an agent that does not list hmac-sha256-v2 refuses its calls as invalid_token", "[token][hmac][v2]") {
  SbusdOptions options;
  options.extra_yaml = "accept: [compat, hmac-sha256]\n";
  SbusdProcess sbusd(options);
  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  CHECK(call_raw(raw, reply_queue, sbusd.node(), v2_body(sbusd.node(), "v2-unlisted", "[1,2]")).code ==
        "invalid_token");
}

TEST_CASE("sbusd and sbusd --check refuse an hmac config whose state_dir cannot be made, naming it", "[token][hmac]") {
  sbus_test::TempDir dir;
  sbus_test::write_file(dir.file("not-a-folder"), "x");
  const std::string state_dir = dir.file("not-a-folder") + "/state";
  const std::string config = dir.file("sbusd.yaml");
  sbus_test::write_file(config, "node: " + sbus_test::unique_node() + "\nbrokers: [" + sbus_test::broker_uri() +
                                    "]\nsecret_file: " + sbus_test::write_secret(dir.path()) +
                                    "\nstate_dir: " + state_dir +
                                    "\naccept: [hmac-sha256-v2]\nplugin_dir: " SBUS_BUILD_DIR
                                    "/plugins\nservices:\n  - name: math.add\n    plugin: math\n");
  for (const bool check : {true, false}) {
    INFO((check ? "--check" : "start"));
    std::vector<std::string> args = {"--config", config};
    if (check) args.push_back("--check");
    const sbus_test::ProcessResult result = sbus_test::run_program(SBUS_BUILD_DIR "/bin/sbusd", args, 20s);
    INFO(result.err);
    CHECK(result.exit_code == 1);
    // Named by the first check that needs the folder: the replay cache's,
    // or the handled store's under it (state_dir/handled).
    const std::size_t named = result.err.find(": state_dir: ");
    REQUIRE(named != std::string::npos);
    const std::string line = result.err.substr(named, result.err.find('\n', named) - named);
    CHECK(line.find(state_dir) != std::string::npos);
    CHECK((line.find("cannot create") != std::string::npos));
  }
}
