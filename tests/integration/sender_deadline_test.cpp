// Issue 19, the sender's side: a call to a node with no queue fails at once
// (mandatory publish, basic.return), and calls and messages carry their
// deadline (header x-sbus-deadline, AMQP expiration), capped by an
// inherited one.
#include <catch2/catch.hpp>

#include <amqp.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sbus/sender.hpp>

#include "harness.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using sbus_test::broker_uri;
using sbus_test::concat;
using sbus_test::RawAmqp;
using sbus_test::run_cli;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

long long unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A queue of the test's own, named and bound as a node's queue, read raw:
// what a sender published to the node, with its properties.
class NodeQueue {
 public:
  explicit NodeQueue(std::string node) : node_(std::move(node)) {
    amqp_queue_declare(raw_.get(), 1, amqp_cstring_bytes(node_.c_str()), 0, 0, 0, 1, amqp_empty_table);
    raw_.check("declare the node's queue");
    amqp_queue_bind(raw_.get(), 1, amqp_cstring_bytes(node_.c_str()), amqp_cstring_bytes("py-servicebus"),
                    amqp_cstring_bytes(node_.c_str()), amqp_empty_table);
    raw_.check("bind the node's queue");
  }
  const std::string& node() const { return node_; }

  struct Got {
    std::optional<std::string> deadline;    // the x-sbus-deadline header
    std::optional<std::string> expiration;  // the AMQP expiration
  };
  // The next message in the queue, waiting up to 5 s for one.
  Got get() {
    const auto until = Clock::now() + 5s;
    while (Clock::now() < until) {
      amqp_rpc_reply_t reply = amqp_basic_get(raw_.get(), 1, amqp_cstring_bytes(node_.c_str()), 1);
      REQUIRE(reply.reply_type == AMQP_RESPONSE_NORMAL);
      if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) {
        std::this_thread::sleep_for(20ms);
        continue;
      }
      amqp_message_t message;
      REQUIRE(amqp_read_message(raw_.get(), 1, &message, 0).reply_type == AMQP_RESPONSE_NORMAL);
      Got got;
      const amqp_basic_properties_t& props = message.properties;
      if (props._flags & AMQP_BASIC_EXPIRATION_FLAG) {
        got.expiration.emplace(static_cast<const char*>(props.expiration.bytes), props.expiration.len);
      }
      if (props._flags & AMQP_BASIC_HEADERS_FLAG) {
        for (int i = 0; i < props.headers.num_entries; ++i) {
          const amqp_table_entry_t& entry = props.headers.entries[i];
          const std::string key(static_cast<const char*>(entry.key.bytes), entry.key.len);
          if (key == "x-sbus-deadline" &&
              (entry.value.kind == AMQP_FIELD_KIND_UTF8 || entry.value.kind == AMQP_FIELD_KIND_BYTES)) {
            got.deadline.emplace(static_cast<const char*>(entry.value.value.bytes.bytes), entry.value.value.bytes.len);
          }
        }
      }
      amqp_destroy_message(&message);
      return got;
    }
    FAIL("nothing came to " << node_);
    return {};
  }

 private:
  std::string node_;
  RawAmqp raw_;
};

// A deadline header that says about `ms_ahead` after `sent` (Unix ms).
void check_deadline(const NodeQueue::Got& got, long long sent, long long ms_ahead) {
  REQUIRE(got.deadline);
  REQUIRE(got.expiration);
  const long long at = std::stoll(*got.deadline);
  CHECK(at >= sent + ms_ahead - 50);
  CHECK(at <= sent + ms_ahead + 1000);
  const long long expiration = std::stoll(*got.expiration);
  CHECK(expiration > ms_ahead - 1000);
  CHECK(expiration <= ms_ahead);
}

}  // namespace

TEST_CASE("sbus call and ping to a node with no queue fail at once, as send does", "[deadline][cli]") {
  SbusdProcess sbusd;  // the exchange exists
  const std::string nosuch = "NOSUCH" + sbus_test::unique_node();
  const auto sent = run_cli(concat({"send", nosuch + ".math.add", "[1,2]"}, sbusd.cli_args()));
  REQUIRE(sent.exit_code != 0);

  auto start = Clock::now();
  const auto called = run_cli(concat({"call", nosuch + ".math.add", "[1,2]", "--timeout", "20"}, sbusd.cli_args()));
  const double call_seconds = seconds_since(start);
  start = Clock::now();
  const auto pinged = run_cli(concat({"ping", nosuch, "--timeout", "20"}, sbusd.cli_args()));
  const double ping_seconds = seconds_since(start);
  std::printf("sbus call %s: %.3f s, sbus ping: %.3f s (timeout 20 s)\n", nosuch.c_str(), call_seconds, ping_seconds);
  INFO("call: " << called.err << "ping: " << pinged.err);
  CHECK(call_seconds < 1.0);
  CHECK(ping_seconds < 1.0);
  CHECK(called.exit_code == sent.exit_code);
  CHECK(pinged.exit_code == sent.exit_code);
  CHECK_THAT(called.err, Contains("no queue for node " + nosuch) && Contains("is its agent configured"));
  CHECK_THAT(pinged.err, Contains("no queue for node " + nosuch) && Contains("is its agent configured"));
}

TEST_CASE("the library's call and call_async to a node with no queue fail at once", "[deadline]") {
  SbusdProcess sbusd;
  const std::string nosuch = "NOSUCH" + sbus_test::unique_node();
  sbus::Sender sender(sbusd.sender_options());

  auto start = Clock::now();
  try {
    sender.call(nosuch + ".math.add", "[1,2]", 20s);
    FAIL("the call succeeded");
  } catch (const sbus::SenderError& e) {
    CHECK(e.kind() == sbus::SenderError::Kind::kUnroutable);
    CHECK_THAT(e.what(), Contains("no queue for node " + nosuch));
  }
  const double call_seconds = seconds_since(start);

  // A pipelined call is returned as a reply with error_code "unroutable";
  // a routed one beside it is answered as usual.
  start = Clock::now();
  const std::string lost = sender.call_async(nosuch + ".math.add", "[1,2]");
  const std::string good = sender.call_async(sbusd.address("math.add"), "[2,3]", 10s);
  std::optional<sbus::AsyncReply> first = sender.next_reply(20s);
  const double async_seconds = seconds_since(start);
  std::optional<sbus::AsyncReply> second = sender.next_reply(20s);
  std::printf("call to %s: %.3f s, call_async: %.3f s\n", nosuch.c_str(), call_seconds, async_seconds);
  CHECK(call_seconds < 1.0);
  CHECK(async_seconds < 1.0);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->id == lost);
  CHECK(first->result.error_code == sbus::kUnroutableCode);
  CHECK_THAT(first->result.message, Contains("no queue for node " + nosuch));
  CHECK(second->id == good);
  CHECK(second->result.message == "5");
  CHECK(sender.in_flight() == 0);

  // The ping of the library throws the same.
  CHECK_THROWS_AS(sender.ping(nosuch, 20s), sbus::SenderError);
}

TEST_CASE("with retry, a node with no queue on the first broker is called through the second", "[deadline][retry]") {
  const std::string vhost = "sbus-deadline-" + sbus_test::unique_node();
  REQUIRE(sbus_test::broker_ctl({"add_vhost", vhost}).exit_code == 0);
  REQUIRE(sbus_test::broker_ctl({"set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"}).exit_code == 0);
  const std::string first = "amqp://guest:guest@127.0.0.1:" + std::to_string(sbus_test::broker_port()) + "/" + vhost;
  {
    // Another node on the first broker: its exchange exists there, the
    // called node's queue does not.
    SbusdOptions elsewhere;
    elsewhere.brokers = {first};
    elsewhere.wait_ready = false;  // its PING would go to the default broker
    SbusdProcess other(elsewhere);
    REQUIRE(sbus_test::wait_until([&] { return other.log().find("serving queue") != std::string::npos; }, 15s));
    SbusdProcess sbusd;

    sbus::SenderOptions options = sbusd.sender_options();
    options.brokers = {first, broker_uri()};
    {
      sbus::Sender once(options);
      CHECK_THROWS_AS(once.call(sbusd.address("math.add"), "[1,2]", 10s), sbus::SenderError);
    }
    options.retry = 1;
    sbus::Sender sender(options);
    const auto start = Clock::now();
    const sbus::CallResult result = sender.call(sbusd.address("math.add"), "[1,2]", 10s);
    std::printf("call through the second broker: %.3f s\n", seconds_since(start));
    CHECK(result.message == "3");
    CHECK(sender.connected_broker().find(vhost) == std::string::npos);
  }
  sbus_test::broker_ctl({"delete_vhost", vhost});
}

TEST_CASE("calls and messages with a ttl carry x-sbus-deadline and an expiration", "[deadline]") {
  SbusdProcess sbusd;  // the exchange exists
  NodeQueue queue("DEADLINE" + sbus_test::unique_node());
  sbus::SenderOptions options = sbusd.sender_options();
  sbus::Sender sender(options);

  // A call waits for its reply: it is read meanwhile, before it expires.
  long long sent = unix_ms_now();
  std::thread caller([&] {
    sbus::Sender waiting(options);
    CHECK_THROWS_AS(waiting.call(queue.node() + ".math.add", "[1,2]", 3s), sbus::SenderError);
  });
  check_deadline(queue.get(), sent, 3000);
  caller.join();

  sent = unix_ms_now();
  sender.call_async(queue.node() + ".math.add", "[1,2]", 5s);
  check_deadline(queue.get(), sent, 5000);

  // Without a timeout an asynchronous call carries no deadline.
  sender.call_async(queue.node() + ".math.add", "[1,2]");
  NodeQueue::Got none = queue.get();
  CHECK_FALSE(none.deadline);
  CHECK_FALSE(none.expiration);

  sent = unix_ms_now();
  sender.send(queue.node() + ".test.record", "{}", 30s);
  check_deadline(queue.get(), sent, 30000);
  sender.send(queue.node() + ".test.record", "{}");
  none = queue.get();
  CHECK_FALSE(none.deadline);
  CHECK_FALSE(none.expiration);

  sent = unix_ms_now();
  auto cli = run_cli(concat({"send", "--ttl", "1500ms", queue.node() + ".test.record", "{}"}, sbusd.cli_args()));
  INFO(cli.err);
  CHECK(cli.exit_code == 0);
  check_deadline(queue.get(), sent, 1500);
  cli = run_cli(concat({"send", "--ttl", "soon", queue.node() + ".test.record", "{}"}, sbusd.cli_args()));
  CHECK(cli.exit_code == 2);

  // send_deadline off: nothing of it on the wire.
  options.send_deadline = false;
  sbus::Sender plain(options);
  plain.call_async(queue.node() + ".math.add", "[1,2]", 5s);
  none = queue.get();
  CHECK_FALSE(none.deadline);
  CHECK_FALSE(none.expiration);
}

TEST_CASE("an inherited deadline caps a call's wait, and one passed stops it unsent", "[deadline]") {
  SbusdProcess sbusd;
  sbus::SenderOptions options = sbusd.sender_options();
  const auto inherited = std::chrono::system_clock::now() + 300ms;
  options.inherited_deadline = [inherited] { return std::optional(inherited); };
  sbus::Sender sender(options);
  auto start = Clock::now();
  // The sender stops waiting at the deadline, and test.sleep gives up then
  // too (Request::given_up()): on a loaded machine its deadline_exceeded
  // answer may reach the sender before the sender's own timer fires.
  try {
    const sbus::CallResult result = sender.call(sbusd.address("test.sleep"), "[2]", 10s);
    INFO("the call returned: " << result.error_code << ": " << result.message);
    CHECK(result.error_code == "deadline_exceeded");
  } catch (const sbus::SenderError& e) {
    CHECK(e.kind() == sbus::SenderError::Kind::kTimeout);
  }
  const double waited = seconds_since(start);
  std::printf("a call of test.sleep [2] with 300 ms inherited: failed after %.3f s\n", waited);
  CHECK(waited > 0.15);
  CHECK(waited < 1.5);  // not the service's 2 s, nor the call's 10 s

  // Now the inherited deadline has passed: the call is not even sent.
  std::this_thread::sleep_until(inherited + 50ms);
  start = Clock::now();
  try {
    sender.call(sbusd.address("math.add"), "[1,2]", 10s);
    FAIL("the call returned");
  } catch (const sbus::SenderError& e) {
    CHECK(e.kind() == sbus::SenderError::Kind::kTimeout);
    CHECK_THAT(e.what(), Contains("the caller's deadline passed"));
  }
  CHECK(seconds_since(start) < 0.05);
}
