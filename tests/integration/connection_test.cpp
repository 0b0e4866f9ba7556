// The worker's broker connection against what callers and careless
// operators do to it: forged direct reply-to addresses (which RabbitMQ 3.10
// answers by closing the replying connection with 541), and the node's
// exchange or binding deleted under a running node.
#include <amqp.h>
#include <rapidjson/document.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include "harness.hpp"

namespace sbus_test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kBase64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(const std::string& bytes) {
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  for (unsigned char c : bytes) {
    bits = (bits << 8) | c;
    count += 8;
    while (count >= 6) {
      count -= 6;
      out += kBase64[(bits >> count) & 63];
    }
  }
  if (count > 0) out += kBase64[(bits << (6 - count)) & 63];
  while (out.size() % 4 != 0) out += '=';
  return out;
}

std::string base64_decode(std::string_view text) {
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    const char* at = std::strchr(kBase64, c);
    if (c == '=' || c == '\0' || at == nullptr) break;
    bits = (bits << 6) | static_cast<std::uint32_t>(at - kBase64);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xFF);
    }
  }
  return out;
}

// A direct reply-to address of a node that is not in the cluster: a real
// one of this broker (RabbitMQ rewrites "amq.rabbitmq.reply-to" in a
// publish from a channel that consumes it), its node name altered in the
// Erlang term of the pid it encodes (the name's last character, so its
// length stays).
std::string forged_reply_to(RawAmqp& raw) {
  const std::string queue = raw.declare_reply_queue();
  amqp_basic_consume(raw.get(), 1, amqp_cstring_bytes("amq.rabbitmq.reply-to"), amqp_empty_bytes, 0, 1, 0,
                     amqp_empty_table);
  raw.check("consume amq.rabbitmq.reply-to");
  raw.publish("", queue, "who am i", "amq.rabbitmq.reply-to");
  const std::optional<RawAmqp::Message> message = raw.receive(5s);
  if (!message) throw std::runtime_error("no message back to learn a direct reply-to address from");
  const std::string prefix = "amq.rabbitmq.reply-to.";
  const std::string& real = message->reply_to;
  const std::size_t dot = real.find('.', prefix.size());
  if (real.rfind(prefix, 0) != 0 || dot == std::string::npos) {
    throw std::runtime_error("not a direct reply-to address: " + real);
  }
  std::string term = base64_decode(std::string_view(real).substr(prefix.size(), dot - prefix.size()));
  // 131, NEW_PID_EXT or PID_EXT, then the node: SMALL_ATOM_UTF8_EXT (1-byte
  // length) or ATOM_UTF8_EXT / ATOM_EXT (2-byte length).
  if (term.size() < 6 || static_cast<unsigned char>(term[0]) != 131)
    throw std::runtime_error("unexpected term in " + real);
  const unsigned char tag = static_cast<unsigned char>(term[2]);
  const std::size_t length = tag == 119 || tag == 115
                                 ? static_cast<unsigned char>(term[3])
                                 : (static_cast<unsigned char>(term[3]) << 8 | static_cast<unsigned char>(term[4]));
  const std::size_t last = (tag == 119 || tag == 115 ? 4 : 5) + length - 1;
  if (length == 0 || last >= term.size()) throw std::runtime_error("unexpected node atom in " + real);
  term[last] = term[last] == 'x' ? 'y' : 'x';
  return prefix + base64_encode(term) + real.substr(dot);
}

// A number of the worker's stats (NODE.sbus.stats).
std::uint64_t stat_of(sbus::Sender& sender, const SbusdProcess& sbusd, const char* key) {
  const sbus::CallResult result = sender.call(sbusd.address("sbus.stats"), "[]", 10s);
  rapidjson::Document stats;
  stats.Parse(result.message.c_str());
  if (!result.ok() || !stats.IsObject() || !stats.HasMember(key) || !stats[key].IsUint64()) {
    throw std::runtime_error("unexpected stats: " + result.message);
  }
  return stats[key].GetUint64();
}

std::uint64_t reconnects_of(sbus::Sender& sender, const SbusdProcess& sbusd) {
  return stat_of(sender, sbusd, "reconnects");
}

}  // namespace

TEST_CASE("calls without a valid token to forged direct reply-to addresses never cost the node its connection",
          "[connection][hostile]") {
  SbusdProcess sbusd;
  RawAmqp raw;
  const std::string forged = forged_reply_to(raw);
  sbus::Sender sender(sbusd.sender_options());
  const std::uint64_t reconnects_before = reconnects_of(sender, sbusd);

  std::atomic<bool> done{false};
  std::atomic<int> calls{0};
  std::atomic<int> failed{0};
  std::string first_failure;
  std::thread caller([&] {
    sbus::Sender loop(sbusd.sender_options());
    while (!done) {
      try {
        const sbus::CallResult result = loop.call(sbusd.address("math.add"), "[1, 2]", 5s);
        if (result.message != "3") throw std::runtime_error("math.add said " + result.message);
      } catch (const std::exception& e) {
        if (failed++ == 0) first_failure = e.what();
      }
      ++calls;
      std::this_thread::sleep_for(20ms);
    }
  });
  // 30 at 5 a second, each answered "Token not valid!".
  const auto started = Clock::now();
  for (int i = 0; i < 30; ++i) {
    // Another key each time: each address is new to the worker.
    raw.publish("py-servicebus", sbusd.node(),
                py_call_body("forged-" + std::to_string(i), "not the secret", "math", "add", "[1, 2]"),
                forged + std::to_string(i), "forged-" + std::to_string(i));
    std::this_thread::sleep_for(200ms);
  }
  // The last reply's fate is known within a second.
  std::this_thread::sleep_for(1s);
  done = true;
  caller.join();
  const std::uint64_t reconnects_after = reconnects_of(sender, sbusd);
  const std::string log = sbusd.log();
  std::cout << "[connection] forged reply-to: forged=30 seconds="
            << std::chrono::duration<double>(Clock::now() - started).count() << " calls=" << calls
            << " failed=" << failed << " reconnects_before=" << reconnects_before
            << " reconnects_after=" << reconnects_after << std::endl;
  INFO("forged address: " << forged << "\nfirst failure: " << first_failure << "\nsbusd log:\n" << log);
  CHECK(calls >= 30);
  CHECK(failed == 0);
  CHECK(reconnects_after == reconnects_before);
  CHECK(log.find("broker closed the connection") == std::string::npos);
  // Callers with the secret still get their "Token not valid!" answers
  // through the quarantine connection.
  TempDir other;
  const ProcessResult call = run_cli({"call", sbusd.address("math.add"), "[2, 3]", "--broker", broker_uri(),
                                      "--secret-file", write_secret(other.path(), "a wrong secret, long enough")});
  CHECK(call.err.find("Token not valid") != std::string::npos);
}

TEST_CASE("replies to authenticated callers on the worker's own broker node go out directly from the first",
          "[connection]") {
  // No PING before (a PING answer takes the quarantine connection, and its
  // delivery proves the node too): wait for the worker's consumer instead.
  SbusdOptions options;
  options.wait_ready = false;
  SbusdProcess sbusd(options);
  const bool consuming = wait_until(
      [&] {
        // A connection each time: a passive declare of a queue not there
        // yet costs the channel.
        RawAmqp raw;
        amqp_queue_declare_ok_t* ok =
            amqp_queue_declare(raw.get(), 1, amqp_cstring_bytes(sbusd.node().c_str()), 1, 0, 0, 0, amqp_empty_table);
        return amqp_get_rpc_reply(raw.get()).reply_type == AMQP_RESPONSE_NORMAL && ok->consumer_count > 0;
      },
      20s, 50ms);
  REQUIRE(consuming);
  // The worker proved its broker's node when it connected: neither its
  // first reply nor any later one to a caller on that node needs the
  // quarantine.
  sbus::Sender caller(sbusd.sender_options());
  CHECK(stat_of(caller, sbusd, "replies_quarantined") == 0);
  for (int i = 0; i < 5; ++i) CHECK(caller.call(sbusd.address("math.add"), "[1, 2]", 5s).message == "3");
  const std::uint64_t after_calls = stat_of(caller, sbusd, "replies_quarantined");
  // PING answers (no token) always take the quarantine connection.
  CHECK(sbus::Sender(sbusd.sender_options()).ping(sbusd.node(), 5s));
  const std::uint64_t after_ping = stat_of(caller, sbusd, "replies_quarantined");
  std::cout << "[connection] quarantined replies: after_calls=" << after_calls << " after_ping=" << after_ping
            << std::endl;
  CHECK(after_calls == 0);
  CHECK(after_ping == 1);
}

TEST_CASE("a deleted exchange or binding is put back by the ping watcher and the node is served again within seconds",
          "[connection]") {
  SbusdOptions options;
  options.exchange = "sbus-it-exchange-" + unique_node();
  options.extra_yaml = "ping_interval: 1\nping_timeout: 1.5\n";
  SbusdProcess sbusd(options);
  RawAmqp raw;
  const auto served = [&] {
    // A sender of its own each time: a publish to a missing exchange costs
    // the sender its channel.
    sbus::Sender sender(sbusd.sender_options());
    try {
      return sender.call(sbusd.address("math.add"), "[1, 2]", 500ms).message == "3";
    } catch (const sbus::SenderError&) {
      return false;
    }
  };
  REQUIRE(served());
  std::string what;
  SECTION("the exchange is deleted") {
    what = "exchange deleted";
    amqp_exchange_delete(raw.get(), 1, amqp_cstring_bytes(options.exchange.c_str()), 0);
    raw.check("exchange.delete");
  }
  SECTION("only the binding is deleted") {
    what = "binding deleted";
    amqp_queue_unbind(raw.get(), 1, amqp_cstring_bytes(sbusd.node().c_str()),
                      amqp_cstring_bytes(options.exchange.c_str()), amqp_cstring_bytes(sbusd.node().c_str()),
                      amqp_empty_table);
    raw.check("queue.unbind");
  }
  const auto deleted_at = Clock::now();
  CHECK_FALSE(served());
  const bool back = wait_until(served, 15s, 100ms);
  const double seconds = std::chrono::duration<double>(Clock::now() - deleted_at).count();
  std::cout << "[connection] " << what << ": served again after " << seconds << " s (ping_interval 1 s)" << std::endl;
  const std::string log = sbusd.log();
  INFO(log);
  CHECK(back);
  CHECK(seconds < 5.0);
  CHECK(log.find("callers reach this node again") != std::string::npos);
  CHECK(log.find("reconnecting") == std::string::npos);
  sbusd.stop();
  amqp_exchange_delete(raw.get(), 1, amqp_cstring_bytes(options.exchange.c_str()), 0);
  raw.check("exchange.delete after the test");
}

}  // namespace sbus_test
