// Events on the paths around their handling (docs/reliability.md, "Events";
// docs/security.md, "Broker users and permissions"): an event past its
// service's queue_len waits in NODE.hold and is handled when it comes back;
// one moved to the error queue is handled after `sbus errors requeue`; and
// agents and senders with exactly the broker permissions that security.md
// lists subscribe, publish and defer.
//
// Every test publishes under a first word of its own (unique_node()).
#include <catch2/catch.hpp>

#include <amqp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <rapidjson/document.h>
#include <sbus/sender.hpp>

#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::BrokerUsers;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using sbus_test::TempDir;
using sbus_test::wait_until;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A `test.record`-backed event service entry, recording to `file`;
// `extra` holds more YAML lines of the entry.
std::string recorder(const std::string& name, const std::string& file, const std::string& topic,
                     const std::string& extra = {}) {
  return "  - name: " + name + "\n    plugin: test\n    export: record\n    kind: event\n    topics: [\"" + topic +
         "\"]\n" + extra + "    options:\n      file: " + file + "\n";
}

struct Recorded {
  std::string topic;
  int n = -1;
};

// The events recorded in `path`: topic and params' "n", in order.
std::vector<Recorded> recorded_in(const std::string& path) {
  std::vector<Recorded> events;
  std::istringstream in(sbus_test::read_file(path));
  for (std::string line; std::getline(in, line);) {
    rapidjson::Document document;
    document.Parse(line.c_str());
    if (document.HasParseError() || !document.IsObject() || !document.HasMember("topic")) continue;
    Recorded event;
    event.topic = document["topic"].GetString();
    if (document["params"].IsObject() && document["params"].HasMember("n")) event.n = document["params"]["n"].GetInt();
    events.push_back(event);
  }
  return events;
}

std::vector<int> sorted_numbers(const std::vector<Recorded>& events) {
  std::vector<int> numbers;
  for (const Recorded& event : events) numbers.push_back(event.n);
  std::sort(numbers.begin(), numbers.end());
  return numbers;
}

std::vector<int> zero_to(int count) {
  std::vector<int> all(count);
  for (int n = 0; n < count; ++n) all[n] = n;
  return all;
}

std::string prefix() {
  return "ev" + sbus_test::unique_node();
}

// The code spans (`...`) of the table row of `page` that starts with
// `row_start` (its columns), after `row_start`, with the table's escaped `\|` read as `|`.
std::vector<std::string> table_row(const std::string& page, const std::string& row_start) {
  const std::size_t at = page.find("\n" + row_start);
  REQUIRE(at != std::string::npos);
  const std::string line = page.substr(at + 1, page.find('\n', at + 1) - at - 1);
  std::vector<std::string> spans;
  for (std::size_t open = line.find('`', row_start.size()); open != std::string::npos;
       open = line.find('`', open + 1)) {
    const std::size_t close = line.find('`', open + 1);
    REQUIRE(close != std::string::npos);
    std::string span = line.substr(open + 1, close - open - 1);
    for (std::size_t bar = span.find("\\|"); bar != std::string::npos; bar = span.find("\\|", bar)) {
      span.erase(bar, 1);
    }
    spans.push_back(span);
    open = close;
  }
  return spans;
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// `^(A|B)$` with `|NAMES` added before the closing `)$`.
std::string with_names(const std::string& pattern, const std::string& names) {
  REQUIRE(pattern.size() > 2);
  REQUIRE(pattern.compare(pattern.size() - 2, 2, ")$") == 0);
  return pattern.substr(0, pattern.size() - 2) + "|" + names + ")$";
}

}  // namespace

TEST_CASE("Events past their service's queue_len wait in NODE.hold and are each handled once when they come back",
          "[events][hold]") {
  TempDir dir;
  const std::string p = prefix();
  SbusdOptions options;
  options.extra_yaml = "hold_time: 0.5\n";
  options.services_yaml = recorder("late.record", dir.file("late"), p + ".jobs.*", "    queue_len: 1\n");
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());

  // The first keeps the service busy for 2 s; of the others, one waits in
  // the worker and the rest go to the hold queue, again and again, until
  // the service is free.
  constexpr int kEvents = 9;
  REQUIRE(sender.publish(p + ".jobs.first", R"({"sleep": 2, "n": 0})"));
  for (int n = 1; n < kEvents; ++n) REQUIRE(sender.publish(p + ".jobs.next", "{\"n\":" + std::to_string(n) + "}"));

  REQUIRE(wait_until([&] { return recorded_in(dir.file("late")).size() >= kEvents; }, 30s, 100ms));
  std::this_thread::sleep_for(300ms);  // anything more would come late
  const std::vector<Recorded> events = recorded_in(dir.file("late"));
  INFO(sbusd.log());
  CHECK(sorted_numbers(events) == zero_to(kEvents));
  // Back from the hold queue as events of their topic, not as messages.
  CHECK(std::count_if(events.begin(), events.end(), [&](const Recorded& e) { return e.topic == p + ".jobs.next"; }) ==
        kEvents - 1);
  const rapidjson::Document stats = sbus_test::stats_of(sender, sbusd);
  const std::uint64_t held = sbus_test::service_stat(stats, "late.record", "held");
  std::cout << "[figure] events moved to the hold queue: " << held << "\n";
  CHECK(held >= kEvents - 2);
  CHECK(sender.list_errors(sbusd.node()).empty());
}

TEST_CASE("A burst of events behind a slow one waits in its queue and none goes to NODE.hold", "[events][hold]") {
  // The service is busy for 0.5 s while 300 events arrive: the event
  // queue's consumer takes no more than the service may hold (prefetch),
  // so none is moved to the hold queue.
  TempDir dir;
  const std::string p = prefix();
  SbusdOptions options;
  options.extra_yaml = "hold_time: 0.5\n";
  options.services_yaml = recorder("burst.record", dir.file("burst"), p + ".burst");
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());
  constexpr int kEvents = 300;
  sender.publish_async(p + ".burst", R"({"sleep": 0.5, "n": 0})");
  for (int n = 1; n < kEvents; ++n) {
    sender.publish_async(p + ".burst", "{\"n\":" + std::to_string(n) + "}");
    if (n % 64 == 63) REQUIRE(sender.wait_published(10s) == 0);
  }
  REQUIRE(sender.wait_published(10s) == 0);
  REQUIRE(wait_until([&] { return recorded_in(dir.file("burst")).size() >= kEvents; }, 30s, 100ms));
  INFO(sbusd.log());
  CHECK(sorted_numbers(recorded_in(dir.file("burst"))) == zero_to(kEvents));
  const rapidjson::Document stats = sbus_test::stats_of(sender, sbusd);
  CHECK(sbus_test::service_stat(stats, "burst.record", "held") == 0);
  CHECK(sbus_test::service_stat(stats, "burst.record", "handled") == kEvents);
}

TEST_CASE("An event moved to the error queue is handled as its service's event after sbus errors requeue",
          "[events][errors]") {
  TempDir dir;
  const std::string p = prefix();
  // The service cannot write its file until its folder exists: every
  // event fails, and goes to the error queue.
  const std::string folder = dir.file("later");
  SbusdOptions options;
  options.extra_yaml = "max_retries: 0\n";
  options.services_yaml = recorder("bill.record", folder + "/events", p + ".orders.*");
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());
  REQUIRE(sender.publish(p + ".orders.paid", R"({"n": 7})"));

  std::vector<sbus::DeadLetter> letters;
  REQUIRE(wait_until([&] { return !(letters = sender.list_errors(sbusd.node())).empty(); }, 15s, 100ms));
  REQUIRE(letters.size() == 1);
  CHECK(letters[0].header("x-sbus-event") == "bill.record");
  CHECK(contains(letters[0].header("x-sbus-error"), "cannot open " + folder + "/events"));

  REQUIRE(::mkdir(folder.c_str(), 0755) == 0);
  std::vector<std::string> args = {"errors", "requeue", sbusd.node()};
  for (const std::string& arg : sbusd.cli_args()) args.push_back(arg);
  const sbus_test::ProcessResult requeued = sbus_test::run_cli(args, 20s);
  INFO(requeued.out << requeued.err);
  REQUIRE(requeued.exit_code == 0);
  CHECK(contains(requeued.out, "requeued 1 message"));

  REQUIRE(wait_until([&] { return recorded_in(folder + "/events").size() == 1; }, 15s, 100ms));
  INFO(sbusd.log());
  const std::vector<Recorded> events = recorded_in(folder + "/events");
  CHECK(events[0].topic == p + ".orders.paid");
  CHECK(events[0].n == 7);
  CHECK(sender.list_errors(sbusd.node()).empty());
}

TEST_CASE(
    "With exactly the broker permissions of docs/security.md, agents subscribe and senders publish and defer "
    "events",
    "[events][permissions]") {
  const std::string page = sbus_test::read_file(std::string(SBUS_SOURCE_DIR) + "/docs/security.md");
  // The events table, for an agent with event services in a group and a
  // sender that publishes events; deferral adds the names of the table
  // above it (the agent's sbus\.delay\..+, the sender's level exchanges).
  const std::vector<std::string> agent_row = table_row(page, "| agent of node `NODE` with event services |");
  const std::vector<std::string> sender_row = table_row(page, "| sender that publishes events |");
  const std::vector<std::string> plain_sender_row = table_row(page, "| sbus sender (`sbus`, `sbus::Sender`) |");
  REQUIRE(agent_row.size() == 3);
  REQUIRE(sender_row.size() == 3);
  REQUIRE(plain_sender_row.size() == 3);
  REQUIRE(contains(page, "add the `sbus\\.delay\\..+` names of the table above to each\n  column"));
  REQUIRE(contains(plain_sender_row[1], "|sbus\\.delay\\.[0-9]+)$"));

  const std::string node = sbus_test::unique_node();
  const std::string group = "g" + std::to_string(::getpid());
  const std::string p = prefix();
  const auto for_agent = [&](const std::string& column) {
    return with_names(replaced(replaced(column, "NODE", node), "(G1|G2)", group), "sbus\\.delay\\..+");
  };
  BrokerUsers users;
  const std::string agent = "sbus-event-agent-" + node;
  const std::string sender_user = "sbus-event-sender-" + node;
  users.add(agent, for_agent(agent_row[0]), for_agent(agent_row[1]), for_agent(agent_row[2]));
  users.add(sender_user, sender_row[0], with_names(sender_row[1], "sbus\\.delay\\.[0-9]+"), sender_row[2]);

  TempDir dir;
  SbusdOptions options;
  options.node = node;
  options.brokers = {BrokerUsers::uri(agent)};
  options.services_yaml = recorder("audit.record", dir.file("audit"), p + ".audit.#") +
                          recorder("bill.take", dir.file("bill"), p + ".orders.*", "    group: " + group + "\n");
  SbusdProcess sbusd(options);

  sbus::SenderOptions sender_options = sbusd.sender_options();
  sender_options.brokers = {BrokerUsers::uri(sender_user)};
  sbus::Sender sender(sender_options);
  CHECK(sender.publish(p + ".audit.login", R"({"n": 1})"));
  CHECK(sender.publish(p + ".orders.paid", R"({"n": 2})"));
  sbus::SendOptions later;
  later.delay = 50ms;
  CHECK(sender.publish(p + ".orders.late", R"({"n": 3})", later));
  std::vector<std::string> args = {
      "publish",       p + ".audit.cli",   R"({"n": 4})", "--delay", "100ms", "--broker", BrokerUsers::uri(sender_user),
      "--secret-file", sbusd.secret_file()};
  const sbus_test::ProcessResult cli = sbus_test::run_cli(args);
  INFO(cli.out << cli.err);
  CHECK(cli.exit_code == 0);
  CHECK(cli.err.empty());

  const bool all = wait_until(
      [&] { return recorded_in(dir.file("audit")).size() == 2 && recorded_in(dir.file("bill")).size() == 2; }, 15s,
      100ms);
  INFO(sbusd.log());
  CHECK(all);
  CHECK(sorted_numbers(recorded_in(dir.file("audit"))) == std::vector<int>{1, 4});
  CHECK(sorted_numbers(recorded_in(dir.file("bill"))) == std::vector<int>{2, 3});
  // Nothing the agent does was refused.
  CHECK_FALSE(contains(sbusd.log(), "ACCESS_REFUSED"));

  // And the sender cannot subscribe itself: it declares no queue.
  sbus_test::RawAmqp raw(sbus_test::broker_port(), sender_user, sender_user);
  amqp_queue_declare(raw.get(), 1, amqp_cstring_bytes(("spy." + node).c_str()), 0, 0, 1, 1, amqp_empty_table);
  CHECK_THROWS_WITH(raw.check("declare a queue"), Catch::Matchers::Contains("ACCESS_REFUSED"));
}
