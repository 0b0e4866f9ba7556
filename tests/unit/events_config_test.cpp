// Event topics and patterns (base/topic.hpp) and the event keys of the
// config: what is accepted, and what `sbusd --check` names with file and
// line.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "base/topic.hpp"
#include "config/config.hpp"

namespace {

constexpr const char* kPath = "/etc/sbus/sbusd.yaml";

std::string head() {
  return "node: n1\n"
         "brokers: [amqp://guest:guest@127.0.0.1:5672/%2f]\n"
         "secret: a sixteen byte secret\n"
         "services:\n";
}

struct Loaded {
  bool ok = false;
  sbus::Config config;
  std::vector<std::string> problems;
};

Loaded load(const std::string& services) {
  Loaded loaded;
  loaded.ok = sbus::load_config_text(head() + services, kPath, {}, &loaded.config, &loaded.problems);
  return loaded;
}

}  // namespace

TEST_CASE("A topic is dot-separated words, and a pattern may also hold * and # as words", "[events]") {
  CHECK(sbus::topic_problem("orders.created").empty());
  CHECK(sbus::topic_problem("audit.login-failed.v_2").empty());
  CHECK(sbus::topic_problem("orders").empty());
  CHECK_THAT(sbus::topic_problem(""), Catch::Contains("empty topic"));
  CHECK_THAT(sbus::topic_problem("orders..created"), Catch::Contains("empty word"));
  CHECK_THAT(sbus::topic_problem("orders.created."), Catch::Contains("empty word"));
  CHECK_THAT(sbus::topic_problem("orders.*"), Catch::Contains("for subscribing"));
  CHECK_THAT(sbus::topic_problem("orders created"), Catch::Contains("letters, digits"));
  CHECK_THAT(sbus::topic_problem(std::string(256, 'a')), Catch::Contains("over the limit of 255"));

  CHECK(sbus::topic_pattern_problem("orders.*").empty());
  CHECK(sbus::topic_pattern_problem("audit.#").empty());
  CHECK(sbus::topic_pattern_problem("#").empty());
  CHECK_THAT(sbus::topic_pattern_problem("ord*.created"), Catch::Contains("'*' or '#' alone"));
  CHECK_THAT(sbus::topic_pattern_problem("orders..*"), Catch::Contains("empty word"));
}

TEST_CASE("Patterns match topics as a RabbitMQ topic exchange does", "[events]") {
  CHECK(sbus::topic_matches("orders.created", "orders.created"));
  CHECK_FALSE(sbus::topic_matches("orders.created", "orders.paid"));
  CHECK(sbus::topic_matches("orders.*", "orders.paid"));
  CHECK_FALSE(sbus::topic_matches("orders.*", "orders"));
  CHECK_FALSE(sbus::topic_matches("orders.*", "orders.paid.late"));
  CHECK(sbus::topic_matches("audit.#", "audit"));
  CHECK(sbus::topic_matches("audit.#", "audit.login.failed"));
  CHECK(sbus::topic_matches("#.failed", "audit.login.failed"));
  CHECK_FALSE(sbus::topic_matches("audit.#", "auditing.login"));
  CHECK(sbus::topic_matches("*.*.failed", "audit.login.failed"));
}

TEST_CASE("An event service lists its topics, optionally a group, and gets its queue", "[events][config]") {
  const Loaded loaded = load(
      "  - name: audit.record\n"
      "    plugin: test\n"
      "    kind: event\n"
      "    topics: [\"orders.*\", \"audit.#\", \"orders.*\"]\n"
      "  - name: bill.take\n"
      "    plugin: test\n"
      "    kind: event\n"
      "    topics: [orders.paid]\n"
      "    group: billing\n");
  REQUIRE(loaded.ok);
  const sbus::Config& config = loaded.config;
  CHECK(config.events_exchange == "sbus.events");
  REQUIRE(config.services.size() == 2);
  CHECK(config.services[0].kind == sbus::ServiceKind::kEvent);
  CHECK(config.services[0].topics == std::vector<std::string>{"orders.*", "audit.#"});
  CHECK(sbus::event_queue_name(config, config.services[0]) == "n1.event.audit.record");
  CHECK(sbus::event_queue_name(config, config.services[1]) == "sbus.events.group.billing");
  const std::vector<sbus::EventBinding> expected = {{"n1.event.audit.record", "audit.#"},
                                                    {"n1.event.audit.record", "orders.*"},
                                                    {"sbus.events.group.billing", "orders.paid"}};
  CHECK(sbus::event_bindings(config) == expected);
}

TEST_CASE("A topic pattern RabbitMQ would not route as meant is named with file and line", "[events][config]") {
  const Loaded loaded = load(
      "  - name: audit.record\n"
      "    plugin: test\n"
      "    kind: event\n"
      "    topics:\n"
      "      - orders.*\n"
      "      - \"ord*.created\"\n");
  CHECK_FALSE(loaded.ok);
  REQUIRE(loaded.problems.size() == 1);
  CHECK_THAT(loaded.problems[0], Catch::StartsWith("/etc/sbus/sbusd.yaml:10: services[0].topics[1]: "));
  CHECK_THAT(loaded.problems[0], Catch::Contains("'ord*'"));
}

TEST_CASE("An event service without topics, and a malformed group, are refused", "[events][config]") {
  SECTION("no topics") {
    const Loaded loaded = load("  - {name: audit.record, plugin: test, kind: event}\n");
    CHECK_FALSE(loaded.ok);
    REQUIRE(loaded.problems.size() == 1);
    CHECK_THAT(loaded.problems[0], Catch::Contains("services[0].topics: missing"));
  }
  SECTION("an empty list") {
    const Loaded loaded = load("  - {name: audit.record, plugin: test, kind: event, topics: []}\n");
    CHECK_FALSE(loaded.ok);
    REQUIRE_FALSE(loaded.problems.empty());
    CHECK_THAT(loaded.problems[0], Catch::Contains("non-empty list of topic patterns"));
  }
  SECTION("a group with a dot") {
    const Loaded loaded = load("  - {name: audit.record, plugin: test, kind: event, topics: [a], group: a.b}\n");
    CHECK_FALSE(loaded.ok);
    REQUIRE_FALSE(loaded.problems.empty());
    CHECK_THAT(loaded.problems[0], Catch::Contains("not a valid group name"));
  }
  SECTION("an events exchange that is the direct exchange") {
    sbus::Config config;
    std::vector<std::string> problems;
    CHECK_FALSE(sbus::load_config_text(head() + "  - {name: math.add, plugin: math}\nevents_exchange: py-servicebus\n",
                                       kPath, {}, &config, &problems));
    REQUIRE_FALSE(problems.empty());
    CHECK_THAT(problems[0], Catch::Contains("must differ from exchange"));
  }
}
