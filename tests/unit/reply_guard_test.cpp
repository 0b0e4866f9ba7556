// Reply addresses after the broker failed to deliver a reply (541): the
// ones used within the window become suspects and go through the
// quarantine until proven alive or dead.
#include "worker/reply_guard.hpp"

#include <string>

#include "worker/reply_address.hpp"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using Route = sbus::ReplyGuard::Route;

TEST_CASE("after a failed delivery the addresses of the last seconds are suspects", "[reply_guard]") {
  sbus::ReplyGuard guard;
  const auto t0 = sbus::ReplyGuard::Clock::time_point{} + 1h;
  const std::uint64_t old_caller = sbus::ReplyGuard::address("amq.rabbitmq.reply-to.old");
  const std::uint64_t caller = sbus::ReplyGuard::address("amq.rabbitmq.reply-to.a");
  const std::uint64_t gone = sbus::ReplyGuard::address("amq.rabbitmq.reply-to.b");
  guard.sent(old_caller, t0);
  guard.sent(caller, t0 + 10s);
  guard.sent(gone, t0 + 11s);
  guard.sent(caller, t0 + 11s);
  CHECK(guard.route(caller) == Route::kDirect);

  CHECK(guard.delivery_failed(t0 + 12s) == 2);
  CHECK(guard.route(caller) == Route::kQuarantine);
  CHECK(guard.route(gone) == Route::kQuarantine);
  CHECK(guard.route(old_caller) == Route::kDirect);  // outside the window

  guard.alive(caller);
  guard.dead(gone);
  CHECK(guard.route(caller) == Route::kDirect);
  CHECK(guard.route(gone) == Route::kDrop);
  // Another failure: the live caller is a suspect again, a dead address
  // stays dead.
  guard.sent(gone, t0 + 13s);
  CHECK(guard.delivery_failed(t0 + 14s) == 1);
  CHECK(guard.route(caller) == Route::kQuarantine);
  CHECK(guard.route(gone) == Route::kDrop);
}

TEST_CASE("with no failed delivery every address is direct", "[reply_guard]") {
  sbus::ReplyGuard guard;
  const std::uint64_t caller = sbus::ReplyGuard::address("amq.rabbitmq.reply-to.a");
  guard.sent(caller, sbus::ReplyGuard::Clock::now());
  CHECK(guard.route(caller) == Route::kDirect);
  CHECK(sbus::ReplyGuard::address("") != 0);
}

namespace {

std::string base64(const std::string& bytes) {
  static const char* kDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  for (unsigned char c : bytes) {
    bits = (bits << 8) | c;
    count += 8;
    while (count >= 6) {
      count -= 6;
      out += kDigits[(bits >> count) & 63];
    }
  }
  if (count > 0) out += kDigits[(bits << (6 - count)) & 63];
  while (out.size() % 4 != 0) out += '=';
  return out;
}

// A direct reply-to address as RabbitMQ 3.10 makes it: base64 of the
// external term of a pid (NEW_PID_EXT with a SMALL_ATOM_UTF8_EXT node, or
// PID_EXT with an ATOM_EXT node), a dot, a key.
std::string reply_to_on(const std::string& node, bool small_atom = true) {
  std::string term = {'\x83', small_atom ? '\x58' : '\x67'};
  if (small_atom) {
    term += '\x77';
    term += static_cast<char>(node.size());
  } else {
    term += '\x64';
    term += '\0';
    term += static_cast<char>(node.size());
  }
  term += node;
  term += std::string(small_atom ? 12 : 9, '\x01');  // id, serial, creation
  return "amq.rabbitmq.reply-to." + base64(term) + ".c2VjcmV0a2V5";
}

}  // namespace

TEST_CASE("a direct reply-to address names the node of its caller", "[reply_guard]") {
  CHECK(sbus::direct_reply_node(reply_to_on("rabbit@host-1")) == "rabbit@host-1");
  CHECK(sbus::direct_reply_node(reply_to_on("reply@104216573", false)) == "reply@104216573");
  SECTION("anything else names none") {
    CHECK(!sbus::direct_reply_node("amq.gen-Jh8s0w"));
    CHECK(!sbus::direct_reply_node("amq.rabbitmq.reply-to"));
    CHECK(!sbus::direct_reply_node("amq.rabbitmq.reply-to.not*base64.key"));
    CHECK(!sbus::direct_reply_node("amq.rabbitmq.reply-to." + base64("\x83hello") + ".key"));
    // A length past the end of the term.
    CHECK(
        !sbus::direct_reply_node("amq.rabbitmq.reply-to." + base64(std::string("\x83\x58\x77\x40", 4) + "ab") + ".k"));
  }
  CHECK(sbus::is_direct_reply_to("amq.rabbitmq.reply-to"));
  CHECK(sbus::is_direct_reply_to("amq.rabbitmq.reply-to.garbage"));
  CHECK(!sbus::is_direct_reply_to("amq.gen-Jh8s0w"));
}

TEST_CASE("a reply goes out directly only to a queue or to a proven node of an authenticated caller", "[reply_guard]") {
  using Caller = sbus::ReplyGuard::Caller;
  sbus::ReplyGuard guard;
  const std::string queue = "amq.gen-Jh8s0w";
  const std::string caller = reply_to_on("rabbit@a");
  const std::string neighbour = caller + "2";  // another key, the same pid and node
  const std::string forged = reply_to_on("rabbit@nowhere");
  const auto route = [&guard](const std::string& reply_to, Caller who) {
    return guard.route_reply(reply_to, sbus::ReplyGuard::address(reply_to), who);
  };

  CHECK(route(queue, Caller::kUnauthenticated) == Route::kDirect);
  CHECK(route(queue, Caller::kAuthenticated) == Route::kDirect);
  // No node is proven yet.
  CHECK(route(caller, Caller::kAuthenticated) == Route::kQuarantine);
  CHECK(route("amq.rabbitmq.reply-to.garbage", Caller::kAuthenticated) == Route::kQuarantine);

  guard.alive(sbus::ReplyGuard::address(caller), caller);
  CHECK(route(caller, Caller::kAuthenticated) == Route::kDirect);
  CHECK(route(neighbour, Caller::kAuthenticated) == Route::kDirect);
  CHECK(route(forged, Caller::kAuthenticated) == Route::kQuarantine);
  // Whatever the node, never for a caller whose token was not valid.
  CHECK(route(caller, Caller::kUnauthenticated) == Route::kQuarantine);
  CHECK(route(forged, Caller::kUnauthenticated) == Route::kQuarantine);

  guard.dead(sbus::ReplyGuard::address(forged));
  CHECK(route(forged, Caller::kUnauthenticated) == Route::kDrop);
}
