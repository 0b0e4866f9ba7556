// Wire compatibility with py-servicebus (PROTOCOL.md), checked from the
// outside: this file speaks AMQP with rabbitmq-c directly and writes and
// reads the XML as text, so that no sbus code (wire codec, token, sender)
// vouches for itself. Only the sbus::Sender tests at the end use sbus, as
// the thing under test facing a py-servicebus agent played by raw rabbitmq-c.
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sbus/sender.hpp>

#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::between;
using sbus_test::local_date;
using sbus_test::py_token;
using sbus_test::RawAmqp;
using sbus_test::SbusdProcess;

namespace {

constexpr const char* kExchange = "py-servicebus";

amqp_bytes_t bytes(std::string_view text) {
  return amqp_bytes_t{text.size(), const_cast<char*>(text.data())};
}

// The reply code with which the broker closed the channel (e.g. 406), or 0
// when the last synchronous method succeeded.
int refusal_code(const RawAmqp& connection) {
  const amqp_rpc_reply_t reply = amqp_get_rpc_reply(connection.get());
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) return 0;
  if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    return static_cast<amqp_channel_close_t*>(reply.reply.decoded)->reply_code;
  }
  if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    return static_cast<amqp_connection_close_t*>(reply.reply.decoded)->reply_code;
  }
  return -1;
}

bool is_valid_token(const std::string& token) {
  for (int day = -1; day <= 1; ++day) {
    if (token == py_token(sbus_test::kSecret, local_date(day))) return true;
  }
  return false;
}

// A py-servicebus agent for one node, played with raw rabbitmq-c: declares
// the exchange and its queue as py-servicebus does, and answers on its own
// thread as py-servicebus's agent would: "3" for math.add with a valid
// token, "Token not valid!" for a bad token, "Cannot Find RPC Service: ..."
// for anything else. The calls it received are kept for the test to check
// on its own thread.
class PyAgent {
 public:
  struct Call {
    std::string body;
    bool has_reply_to = false;
    std::string reply_to;
    bool has_correlation_id = false;
    std::string correlation_id;
  };

  explicit PyAgent(std::string node) : node_(std::move(node)) {
    amqp_connection_state_t c = connection_.get();
    amqp_exchange_declare(c, 1, bytes(kExchange), amqp_cstring_bytes("direct"), 0, 0, 0, 0, amqp_empty_table);
    connection_.check("declare exchange");
    amqp_queue_declare(c, 1, bytes(node_), 0, 1, 0, 0, amqp_empty_table);
    connection_.check("declare queue " + node_);
    amqp_queue_bind(c, 1, bytes(node_), bytes(kExchange), bytes(node_), amqp_empty_table);
    connection_.check("bind queue " + node_);
    amqp_basic_qos(c, 1, 0, 1, 0);
    connection_.check("basic.qos");
    amqp_basic_consume(c, 1, bytes(node_), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    connection_.check("consume " + node_);
    // From here on only the agent's thread touches the connection.
    thread_ = std::thread([this] { run(); });
  }

  ~PyAgent() {
    stop_ = true;
    thread_.join();
    amqp_queue_delete(connection_.get(), 1, bytes(node_), 0, 0);
  }

  std::vector<Call> calls() {
    std::lock_guard<std::mutex> lock(mutex_);
    return calls_;
  }
  std::string error() {
    std::lock_guard<std::mutex> lock(mutex_);
    return error_;
  }

 private:
  void run() {
    try {
      while (!stop_) {
        std::optional<RawAmqp::Message> message = connection_.receive(100ms);
        if (!message) continue;
        // py-servicebus acks before it processes.
        amqp_basic_ack(connection_.get(), 1, message->delivery_tag, 0);
        {
          std::lock_guard<std::mutex> lock(mutex_);
          calls_.push_back(Call{message->body, message->has_reply_to, message->reply_to, message->has_correlation_id,
                                message->correlation_id});
        }
        if (!message->has_reply_to) continue;
        const std::string id = between(message->body, "<id>", "</id>").value_or("");
        const std::string token = between(message->body, "<token>", "</token>").value_or("");
        const std::string category = between(message->body, "<catgory>", "</catgory>").value_or("");
        const std::string service = between(message->body, "<service>", "</service>").value_or("");
        std::string result;
        if (!is_valid_token(token)) {
          result = "Token not valid!";
        } else if (category == "math" && service == "add") {
          result = "3";
        } else {
          result = "Cannot Find RPC Service: " + category + "." + service;
        }
        const std::string reply = "<?xml version=\"1.0\"?><response><id>" + id + "</id><message><![CDATA[" + result +
                                  "]]></message></response>";
        connection_.publish("", message->reply_to, reply, {}, message->correlation_id);
      }
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = e.what();
    }
  }

  std::string node_;
  RawAmqp connection_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<Call> calls_;
  std::string error_;
  std::thread thread_;
};

}  // namespace

TEST_CASE("the tests' own token function matches the protocol's vectors", "[wire]") {
  CHECK(py_token("secret token", "2026-11-22") == "f3c4e891f6389a1f211c7d3fa217827bada51eab");
  CHECK(py_token("secret token", "2026-11-23") == "e7ea0d27ee691122c648a3c259c0a2aa0df621d9");
  CHECK(py_token("secret token", "2026-11-24") == "1fee7331024700449d007cecd79bee7b2c202c4e");
}

TEST_CASE("sbusd answers a call written exactly as py-servicebus writes it", "[wire]") {
  SbusdProcess sbusd;
  RawAmqp raw;
  // py-servicebus declares one exclusive server-named queue per call.
  const std::string reply_queue = raw.declare_reply_queue();
  REQUIRE(reply_queue.rfind("amq.gen-", 0) == 0);

  const std::string id = "py-" + std::to_string(getpid()) + "-1";
  const std::string correlation_id = "corr-" + std::to_string(getpid()) + "-1";
  const std::string body =
      "<?xml version=\"1.0\"?>\n"
      "<event version=\"1\">\n"
      "    <id>" +
      id +
      "</id>\n"
      "    <token>" +
      py_token(sbus_test::kSecret, local_date()) +
      "</token>\n"
      "    <catgory>math</catgory>\n"
      "    <service>add</service>\n"
      "    <params><![CDATA[[1,2]]]></params>\n"
      "</event>";
  raw.publish(kExchange, sbusd.node(), body, reply_queue, correlation_id);

  std::optional<RawAmqp::Message> reply = raw.receive(10s);
  INFO("sbusd log:\n" << sbusd.log());
  REQUIRE(reply);
  INFO("reply: " << reply->body);
  CHECK(reply->has_correlation_id);
  CHECK(reply->correlation_id == correlation_id);
  CHECK(reply->body.rfind("<?xml version=\"1.0\"?>", 0) == 0);
  CHECK(reply->body.find("<response") != std::string::npos);
  CHECK(between(reply->body, "<id>", "</id>") == id);
  CHECK(reply->body.find("<message><![CDATA[3]]></message>") != std::string::npos);
  CHECK(reply->body.find("</response>") != std::string::npos);
}

TEST_CASE("sbusd accepts the seed README's <category> spelling too", "[wire]") {
  SbusdProcess sbusd;
  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  const std::string body =
      "<?xml version=\"1.0\"?>\n"
      "<event version=\"1\">\n"
      "    <id>readme-1</id>\n"
      "    <token>" +
      py_token(sbus_test::kSecret, local_date()) +
      "</token>\n"
      "    <category>math</category>\n"
      "    <service>add</service>\n"
      "    <params><![CDATA[[40,2]]]></params>\n"
      "</event>";
  raw.publish(kExchange, sbusd.node(), body, reply_queue, "readme-1");
  std::optional<RawAmqp::Message> reply = raw.receive(10s);
  REQUIRE(reply);
  CHECK(reply->body.find("<message><![CDATA[42]]></message>") != std::string::npos);
}

TEST_CASE("sbusd answers the body PING with exactly PONG", "[wire]") {
  SbusdProcess sbusd;
  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  raw.publish(kExchange, sbusd.node(), "PING", reply_queue, "ping-1");
  std::optional<RawAmqp::Message> reply = raw.receive(10s);
  REQUIRE(reply);
  CHECK(reply->body == "PONG");
  CHECK(reply->correlation_id == "ping-1");
}

TEST_CASE("sbusd declares its queue and the exchange exactly as py-servicebus does", "[wire]") {
  SbusdProcess sbusd;
  const std::string node = sbusd.node();

  SECTION("the node queue exists, durable, not exclusive, not auto-delete") {
    RawAmqp raw;
    amqp_queue_declare_ok_t* ok = amqp_queue_declare(raw.get(), 1, bytes(node), 1, 0, 0, 0, amqp_empty_table);
    REQUIRE(refusal_code(raw) == 0);
    CHECK(ok->consumer_count == 1);
    // The same properties again: accepted, no PRECONDITION_FAILED.
    amqp_queue_declare(raw.get(), 1, bytes(node), 0, 1, 0, 0, amqp_empty_table);
    CHECK(refusal_code(raw) == 0);
  }

  SECTION("a non-durable declare of the node queue is refused with 406") {
    RawAmqp raw;
    amqp_queue_declare(raw.get(), 1, bytes(node), 0, 0, 0, 0, amqp_empty_table);
    CHECK(refusal_code(raw) == 406);
  }

  SECTION("an auto-delete declare of the node queue is refused with 406") {
    RawAmqp raw;
    amqp_queue_declare(raw.get(), 1, bytes(node), 0, 1, 0, 1, amqp_empty_table);
    CHECK(refusal_code(raw) == 406);
  }

  SECTION("the exchange is a non-durable direct exchange") {
    RawAmqp raw;
    amqp_exchange_declare(raw.get(), 1, bytes(kExchange), amqp_cstring_bytes("direct"), 0, 0, 0, 0, amqp_empty_table);
    CHECK(refusal_code(raw) == 0);
  }

  SECTION("a durable declare of the exchange is refused with 406") {
    // Its own connection: the refusal closes the channel.
    RawAmqp raw;
    amqp_exchange_declare(raw.get(), 1, bytes(kExchange), amqp_cstring_bytes("direct"), 0, 1, 0, 0, amqp_empty_table);
    CHECK(refusal_code(raw) == 406);
  }

  SECTION("a fanout declare of the exchange is refused with 406") {
    RawAmqp raw;
    amqp_exchange_declare(raw.get(), 1, bytes(kExchange), amqp_cstring_bytes("fanout"), 0, 0, 0, 0, amqp_empty_table);
    CHECK(refusal_code(raw) == 406);
  }

  // The probes above change nothing: sbusd still serves.
  sbus::Sender sender(sbusd.sender_options());
  CHECK(sender.ping(node, 10s));
}

TEST_CASE("the sbus sender calls a py-servicebus agent as py-servicebus senders do", "[wire][sender]") {
  const std::string node = "PYAGENT-" + std::to_string(getpid());
  PyAgent agent(node);

  sbus::SenderOptions options;
  options.brokers = {sbus_test::broker_uri()};
  options.secret = sbus_test::kSecret;
  sbus::Sender sender(options);

  SECTION("a call with the right secret gets py-servicebus's plain result") {
    const std::string date_before = local_date();
    sbus::CallResult result = sender.call(node + ".math.add", "[1,2]", 10s);
    const std::string date_after = local_date();
    INFO("agent error: " << agent.error());
    CHECK(result.ok());
    CHECK(result.message == "3");

    const std::vector<PyAgent::Call> calls = agent.calls();
    REQUIRE(calls.size() == 1);
    const PyAgent::Call& call = calls[0];
    INFO("body: " << call.body);
    CHECK(call.body.find("<event version=\"1\">") != std::string::npos);
    CHECK(call.body.find("<catgory>math</catgory>") != std::string::npos);
    CHECK(call.body.find("<service>add</service>") != std::string::npos);
    const std::string token = between(call.body, "<token>", "</token>").value_or("");
    CHECK((token == py_token(sbus_test::kSecret, date_before) || token == py_token(sbus_test::kSecret, date_after)));
    CHECK(call.body.find("<params><![CDATA[[1,2]]]></params>") != std::string::npos);
    CHECK(between(call.body, "<id>", "</id>") == result.id);
    CHECK(call.has_reply_to);
    CHECK(!call.reply_to.empty());
    CHECK(call.has_correlation_id);
    CHECK(!call.correlation_id.empty());
  }

  SECTION("py-servicebus's 'Token not valid!' comes back as invalid_token") {
    sbus::SenderOptions wrong = options;
    wrong.secret = "not the secret";
    sbus::Sender impostor(wrong);
    sbus::CallResult result = impostor.call(node + ".math.add", "[1,2]", 10s);
    INFO("agent error: " << agent.error());
    CHECK(!result.ok());
    CHECK(result.error_code == "invalid_token");
    CHECK(result.message == "Token not valid!");
  }

  SECTION("py-servicebus's 'Cannot Find RPC Service' comes back as unknown_service") {
    sbus::CallResult result = sender.call(node + ".math.mul", "[1,2]", 10s);
    INFO("agent error: " << agent.error());
    CHECK(result.error_code == "unknown_service");
    CHECK(result.message == "Cannot Find RPC Service: math.mul");
  }

  SECTION("a message carries no reply_to, as py-servicebus messages do") {
    sender.send(node + ".log.write", R"({"line":"x"})");
    REQUIRE(sbus_test::wait_until([&] { return !agent.calls().empty(); }, 10s));
    const PyAgent::Call call = agent.calls()[0];
    CHECK(!call.has_reply_to);
    CHECK(call.body.find("<catgory>log</catgory>") != std::string::npos);
    CHECK(call.body.find("<params><![CDATA[{\"line\":\"x\"}]]></params>") != std::string::npos);
  }
}
