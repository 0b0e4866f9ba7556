// Events on a RabbitMQ cluster of two nodes (the fixture `cluster_brokers`):
// agents connected to different nodes of the cluster, senders to either.
// Without a group each agent gets its own copy of every event, whichever
// node it and the publisher are connected to; a group shares one queue,
// which lives on one node and is consumed from both, so each event is
// handled once, by one agent or the other.
//
// Every test publishes under a first word of its own (unique_node()), so
// that tests sharing the cluster's events exchange never see each other's
// events.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <rapidjson/document.h>
#include <sbus/sender.hpp>

#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using sbus_test::TempDir;
using sbus_test::wait_until;

namespace {

// The AMQP URI of the cluster's node `role` ("a" or "b").
std::string node_uri(const std::string& role) {
  std::string port = sbus_test::read_file(std::string(SBUS_CLUSTER_STATE_DIR) + "/" + role + ".port");
  while (!port.empty() && (port.back() == '\n' || port.back() == ' ')) port.pop_back();
  if (port.empty()) {
    throw std::runtime_error("no test cluster: " SBUS_CLUSTER_STATE_DIR "/" + role +
                             ".port is missing. The CTest fixture `cluster_brokers` (tests/cluster/cluster_brokers "
                             "start " SBUS_CLUSTER_STATE_DIR ") starts it; run the test through ctest");
  }
  return "amqp://guest:guest@127.0.0.1:" + port + "/%2f";
}

sbus::SenderOptions sender_on(const std::string& role) {
  sbus::SenderOptions options;
  options.brokers = {node_uri(role)};
  options.secret = sbus_test::kSecret;
  return options;
}

// A `test.record`-backed event service entry, recording to `file`.
std::string recorder(const std::string& name, const std::string& file, const std::string& topic,
                     const std::string& group = {}) {
  std::string yaml = "  - name: " + name + "\n    plugin: test\n    export: record\n    kind: event\n    topics: [\"" +
                     topic + "\"]\n";
  if (!group.empty()) yaml += "    group: " + group + "\n";
  return yaml + "    options:\n      file: " + file + "\n";
}

// An sbusd connected to the cluster's node `role` only, serving `services`;
// returns once it answers PING through that node.
class Agent {
 public:
  Agent(const std::string& role, const std::string& services) : sbusd_(options(role, services)) {
    sbus::Sender sender(sender_on(role));
    const bool ready = wait_until(
        [&] {
          try {
            return sender.ping(sbusd_.node(), 250ms);
          } catch (const sbus::SenderError&) {
            return false;
          }
        },
        15s, 50ms);
    INFO(sbusd_.log());
    REQUIRE(ready);
  }
  SbusdProcess& sbusd() { return sbusd_; }

 private:
  static SbusdOptions options(const std::string& role, const std::string& services) {
    SbusdOptions options;
    options.brokers = {node_uri(role)};
    options.services_yaml = services;
    options.wait_ready = false;  // the harness would ping through the fixture `broker`
    return options;
  }
  SbusdProcess sbusd_;
};

// The "n" of each event recorded in `path`.
std::vector<int> numbers_in(const std::string& path) {
  std::vector<int> numbers;
  std::istringstream in(sbus_test::read_file(path));
  for (std::string line; std::getline(in, line);) {
    rapidjson::Document document;
    document.Parse(line.c_str());
    if (!document.HasParseError() && document.IsObject() && document["params"].IsObject() &&
        document["params"].HasMember("n")) {
      numbers.push_back(document["params"]["n"].GetInt());
    }
  }
  std::sort(numbers.begin(), numbers.end());
  return numbers;
}

std::vector<int> zero_to(int count) {
  std::vector<int> all(count);
  for (int n = 0; n < count; ++n) all[n] = n;
  return all;
}

// Publishes events n = first ... first + count - 1 to `topic` with
// confirms, 64 in flight; none may come back unrouted.
void publish_numbers(sbus::Sender& sender, const std::string& topic, int first, int count) {
  for (int n = first; n < first + count; ++n) {
    sender.publish_async(topic, "{\"n\":" + std::to_string(n) + "}");
    if (n % 64 == 63) REQUIRE(sender.wait_published(10s) == 0);
  }
  REQUIRE(sender.wait_published(10s) == 0);
}

}  // namespace

TEST_CASE("On a cluster, every agent gets its own copy of each event, whichever node it and the publisher use",
          "[cluster][events]") {
  TempDir dir;
  const std::string p = "cl" + sbus_test::unique_node();
  Agent on_a("a", recorder("audit.record", dir.file("a"), p + ".orders.*"));
  Agent on_b("b", recorder("audit.record", dir.file("b"), p + ".orders.*"));
  sbus::Sender via_a(sender_on("a"));
  sbus::Sender via_b(sender_on("b"));
  constexpr int kHalf = 50;
  publish_numbers(via_a, p + ".orders.created", 0, kHalf);
  publish_numbers(via_b, p + ".orders.paid", kHalf, kHalf);
  // And one deferred through the levels, published on b.
  sbus::SendOptions later;
  later.delay = 300ms;
  REQUIRE(via_b.publish(p + ".orders.late", "{\"n\":" + std::to_string(2 * kHalf) + "}", later));

  const int total = 2 * kHalf + 1;
  const bool all =
      wait_until([&] { return numbers_in(dir.file("a")).size() >= total && numbers_in(dir.file("b")).size() >= total; },
                 20s, 100ms);
  INFO("agent on a:\n" << on_a.sbusd().log() << "\nagent on b:\n" << on_b.sbusd().log());
  CHECK(all);
  CHECK(numbers_in(dir.file("a")) == zero_to(total));
  CHECK(numbers_in(dir.file("b")) == zero_to(total));
}

TEST_CASE("On a cluster, a group of two agents on different nodes handles each event once, both taking a share",
          "[cluster][events][group]") {
  TempDir dir;
  const std::string p = "cl" + sbus_test::unique_node();
  const std::string group = "g" + sbus_test::unique_node();
  Agent on_a("a", recorder("bill.take", dir.file("a"), p + ".orders.paid", group));
  Agent on_b("b", recorder("bill.take", dir.file("b"), p + ".orders.paid", group));
  // Through node b: the group's queue lives on node a, which declared it
  // first, and is consumed from both nodes.
  sbus::Sender via_b(sender_on("b"));
  constexpr int kEvents = 1000;
  publish_numbers(via_b, p + ".orders.paid", 0, kEvents);

  const auto handled = [&] { return numbers_in(dir.file("a")).size() + numbers_in(dir.file("b")).size(); };
  REQUIRE(wait_until([&] { return handled() >= kEvents; }, 40s, 100ms));
  // Anything more would come late: give it a moment to show.
  std::this_thread::sleep_for(300ms);
  const std::vector<int> from_a = numbers_in(dir.file("a"));
  const std::vector<int> from_b = numbers_in(dir.file("b"));
  std::vector<int> seen = from_a;
  seen.insert(seen.end(), from_b.begin(), from_b.end());
  std::sort(seen.begin(), seen.end());
  std::cout << "[figure] group of two on a cluster: " << from_a.size() << " on node a and " << from_b.size()
            << " on node b of " << kEvents << " events\n";
  CHECK(seen == zero_to(kEvents));
  CHECK(!from_a.empty());
  CHECK(!from_b.empty());
}
