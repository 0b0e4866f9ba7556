// Bodies built to hurt the parser, published straight to sbusd's queue as a
// hostile publisher on the broker would: each gets an error reply with the
// right code within milliseconds, and the same worker goes on serving.
// Each case prints how long its reply took.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <iostream>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <sbus/sender.hpp>

#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::kSecret;
using sbus_test::py_call_body;
using sbus_test::RawAmqp;
using sbus_test::SbusdProcess;
using Clock = std::chrono::steady_clock;

namespace {

std::size_t count(std::string_view text, std::string_view needle) {
  std::size_t n = 0;
  for (std::size_t at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::string repeat(std::string_view text, std::size_t times) {
  std::string out;
  out.reserve(text.size() * times);
  for (std::size_t i = 0; i < times; ++i) out += text;
  return out;
}

// A call event whose <params> holds `params_markup` as it is (not in CDATA).
std::string event_with_params(std::string_view id, std::string_view params_markup) {
  std::string body = py_call_body(id, kSecret, "test", "echo", "[]");
  const std::size_t open = body.find("<params>") + 8;
  body.replace(open, body.find("</params>") - open, params_markup);
  return body;
}

// A TCP listener on 127.0.0.1 that counts the connections made to it: the
// place an external entity or DTD of a test document points to.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error("cannot listen on 127.0.0.1");
    }
    port_ = ntohs(address.sin_port);
  }
  ~Listener() { ::close(fd_); }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  std::string url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/" + std::string(path);
  }
  int accepted() {
    for (int client; (client = ::accept(fd_, nullptr, nullptr)) >= 0;) {
      ::close(client);
      ++accepted_;
    }
    return accepted_;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  int accepted_ = 0;
};

struct Hostile {
  std::string name;
  std::string body;
  std::string code;                  // expected in <response code="...">
  std::vector<std::string> never{};  // text the reply must not contain
};

// Publishes `body` as an RPC to `sbusd` and waits for the reply; prints and
// returns how long the reply took after the publish returned.
std::optional<RawAmqp::Message> call_raw(const SbusdProcess& sbusd, RawAmqp& raw, const std::string& reply_queue,
                                         const std::string& name, const std::string& body,
                                         std::chrono::milliseconds* took) {
  const auto start = Clock::now();
  raw.publish("py-servicebus", sbusd.node(), body, reply_queue, name);
  const auto published = Clock::now();
  std::optional<RawAmqp::Message> reply = raw.receive(30s);
  *took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - published);
  std::cout << "[figure] hostile input: " << name << " (" << body.size() << " bytes): published in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(published - start).count()
            << " ms, error reply after " << took->count() << " ms\n";
  return reply;
}

}  // namespace

TEST_CASE("hostile XML gets an error reply within milliseconds and the same worker keeps serving", "[hostile]") {
  SbusdProcess sbusd;
  Listener listener;
  std::vector<Hostile> cases;

  std::string laughs = "<!ENTITY l0 \"lol\">\n";
  for (int i = 1; i < 10; ++i) {
    laughs += "<!ENTITY l" + std::to_string(i) + " \"" + repeat("&l" + std::to_string(i - 1) + ";", 10) + "\">\n";
  }
  cases.push_back({"billion laughs",
                   "<?xml version=\"1.0\"?>\n<!DOCTYPE event [\n" + laughs + "]>\n" +
                       event_with_params("laughs-1", "[\"&l9;\"]").substr(22),
                   "malformed_xml",
                   {"lollol"}});
  cases.push_back({"external entity (XXE)",
                   "<?xml version=\"1.0\"?>\n<!DOCTYPE event [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n" +
                       event_with_params("xxe-1", "[\"&xxe;\"]").substr(22),
                   "malformed_xml",
                   {"root:", "/bin/"}});
  cases.push_back({"external DTD and parameter entity over the network",
                   "<?xml version=\"1.0\"?>\n<!DOCTYPE event SYSTEM \"" + listener.url("evil.dtd") +
                       "\" [<!ENTITY % remote SYSTEM \"" + listener.url("evil.ent") + "\"> %remote;]>\n" +
                       event_with_params("dtd-1", "[]").substr(22),
                   "malformed_xml"});
  cases.push_back({"100000 nested elements in <params>",
                   event_with_params("deep-1", repeat("<a>", 100000) + repeat("</a>", 100000)), "malformed_xml"});
  cases.push_back(
      {"200000 sibling elements in <params>", event_with_params("wide-1", repeat("<a/>", 200000)), "malformed_xml"});
  // libxml2 2.9 checks attributes for duplicates pairwise: minutes for this.
  std::string attributes;
  for (int i = 0; attributes.size() < 900000; ++i) attributes += " a" + std::to_string(i) + "=\"\"";
  std::string flood = py_call_body("attributes-1", kSecret, "test", "echo", "[]");
  flood.insert(flood.find("<event version=\"1\"") + 18, attributes);
  cases.push_back({"90000 attributes on <event>", flood, "malformed_xml"});
  std::string bad_utf8 = py_call_body("utf8-1", kSecret, "test", "echo", "[\"\xff\xfe\xc0\xaf\xed\xa0\x80\"]");
  cases.push_back({"invalid UTF-8 in the params", bad_utf8, "malformed_xml"});
  std::string bad_utf8_id = py_call_body("utf8-\xc3\x28", kSecret, "test", "echo", "[]");
  cases.push_back({"invalid UTF-8 in the id", bad_utf8_id, "malformed_xml"});
  std::string utf16 = "\xff\xfe";
  for (char c : py_call_body("utf16-1", kSecret, "test", "echo", "[]")) {
    utf16 += c;
    utf16 += '\0';
  }
  cases.push_back({"a UTF-16 document", utf16, "malformed_xml"});
  std::mt19937 random(20240501);
  std::string junk(64 * 1024, '\0');
  for (char& c : junk) c = static_cast<char>(random());
  cases.push_back({"64 KiB of binary junk", junk, "malformed_xml"});
  cases.push_back({"binary junk after '<'", "<" + junk.substr(0, 4096), "malformed_xml"});

  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  for (const Hostile& hostile : cases) {
    INFO(hostile.name);
    std::chrono::milliseconds took{};
    const auto reply = call_raw(sbusd, raw, reply_queue, hostile.name, hostile.body, &took);
    REQUIRE(reply);
    CHECK(took < 2s);
    CHECK(reply->correlation_id == hostile.name);
    CHECK(reply->body.find("status=\"error\"") != std::string::npos);
    CHECK(reply->body.find("code=\"" + hostile.code + "\"") != std::string::npos);
    for (const std::string& never : hostile.never) {
      INFO("reply: " << reply->body);
      CHECK(reply->body.find(never) == std::string::npos);
    }
  }
  CHECK(listener.accepted() == 0);

  sbus::Sender sender(sbusd.sender_options());
  const sbus::CallResult sum = sender.call(sbusd.address("math.add"), "[1,2]", 10s);
  CHECK(sum.ok());
  CHECK(sum.message == "3");
  CHECK(sbusd.running());
  INFO(sbusd.log());
  // One worker all along: a crash would have started another, which logs
  // its own "connected to".
  CHECK(count(sbusd.log(), "] connected to ") == 1);
}

TEST_CASE("a 100 MB body gets message_too_large without being parsed", "[hostile]") {
  // RabbitMQ 3.10 takes messages up to 128 MB (max_message_size); sbusd's
  // default max_message_bytes is 1 MiB.
  SbusdProcess sbusd;
  std::string body = py_call_body("huge-1", kSecret, "test", "echo", "[\"\"]");
  body.insert(body.find("[\"") + 2, std::string(100 * 1000 * 1000, 'x'));

  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  std::chrono::milliseconds took{};
  const auto reply = call_raw(sbusd, raw, reply_queue, "100 MB body", body, &took);
  REQUIRE(reply);
  INFO("reply: " << reply->body);
  // The broker hands sbusd the whole body before sbusd can look at it
  // (about 0.7 s for 100 MB on an idle machine): the time is the transfer's.
  CHECK(took < 10s);
  CHECK(reply->body.find("code=\"message_too_large\"") != std::string::npos);
  CHECK(reply->body.find("over the limit of 1048576") != std::string::npos);

  sbus::Sender sender(sbusd.sender_options());
  CHECK(sender.call(sbusd.address("math.add"), "[2,3]", 10s).message == "5");
  INFO(sbusd.log());
  CHECK(count(sbusd.log(), "] connected to ") == 1);
}

TEST_CASE("params nested 100000 deep get invalid_params and the same worker keeps serving", "[hostile]") {
  SbusdProcess sbusd;
  RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  struct Nesting {
    const char* what;
    std::string open;
    std::string close;
    std::size_t depth;
  };
  // The last one fills the 1 MiB limit: deep enough to overflow the stack
  // of any recursive parser.
  for (const Nesting& nesting : {Nesting{"arrays", "[", "]", 100000}, Nesting{"objects", "{\"a\":", "}", 100000},
                                 Nesting{"arrays", "[", "]", 500000}}) {
    const std::string params = repeat(nesting.open, nesting.depth) + "1" + repeat(nesting.close, nesting.depth);
    const std::string name = "params nested " + std::to_string(nesting.depth) + " deep in " + nesting.what;
    INFO(name);
    std::chrono::milliseconds took{};
    const auto reply =
        call_raw(sbusd, raw, reply_queue, name, py_call_body("json-deep", kSecret, "test", "echo", params), &took);
    REQUIRE(reply);
    INFO("reply: " << reply->body);
    CHECK(took < 2s);
    CHECK(reply->body.find("code=\"invalid_params\"") != std::string::npos);
  }

  sbus::Sender sender(sbusd.sender_options());
  CHECK(sender.call(sbusd.address("math.add"), "[2,3]", 10s).message == "5");
  INFO(sbusd.log());
  CHECK(count(sbusd.log(), "] connected to ") == 1);
}
