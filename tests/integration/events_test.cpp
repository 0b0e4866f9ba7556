// Events on a real broker: `sbus publish`, Sender::publish and a plugin's
// sender reaching event services by RabbitMQ topic patterns; one copy per
// node, one per group; a reload that changes the topics without losing an
// event of a topic that stays; failures into the error queue.
//
// Every test publishes under a first word of its own (unique_node()), so
// that the tests sharing the broker's events exchange never see each
// other's events.
#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <rapidjson/document.h>

#include "events_harness.hpp"

namespace {

// A `test.record`-backed event service entry (CATEGORY.record exported
// from the test plugin), recording to `file`.
std::string recorder(const std::string& name, const std::string& file, const std::vector<std::string>& topics,
                     const std::string& group = {}) {
  std::string yaml = "  - name: " + name + "\n    plugin: test\n    export: record\n    kind: event\n    topics:\n";
  for (const std::string& topic : topics) yaml += "      - \"" + topic + "\"\n";
  if (!group.empty()) yaml += "    group: " + group + "\n";
  return yaml + "    options:\n      file: " + file + "\n";
}

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> lines;
  std::istringstream in(sbus_test::read_file(path));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// The topics recorded in `path`, in order.
std::vector<std::string> topics_in(const std::string& path) {
  std::vector<std::string> topics;
  for (const std::string& line : lines_of(path)) {
    rapidjson::Document document;
    document.Parse(line.c_str());
    REQUIRE((!document.HasParseError() && document.IsObject() && document.HasMember("topic")));
    topics.emplace_back(document["topic"].GetString());
  }
  return topics;
}

// The "n" of each event's params recorded in `path`.
std::vector<int> numbers_in(const std::string& path) {
  std::vector<int> numbers;
  for (const std::string& line : lines_of(path)) {
    rapidjson::Document document;
    document.Parse(line.c_str());
    if (!document.HasParseError() && document.IsObject() && document["params"].IsObject() &&
        document["params"].HasMember("n")) {
      numbers.push_back(document["params"]["n"].GetInt());
    }
  }
  return numbers;
}

}  // namespace

TEST_CASE("An event reaches every event service whose pattern matches its topic: exact, * and #", "[events]") {
  TempDir dir;
  const std::string p = sbus_test::topic_prefix();
  SbusdOptions options;
  options.services_yaml = recorder("exact.record", dir.file("exact"), {p + ".orders.created"}) +
                          recorder("star.record", dir.file("star"), {p + ".orders.*"}) +
                          recorder("hash.record", dir.file("hash"), {p + ".audit.#"});
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());

  CHECK(sender.publish(p + ".orders.created", R"({"order":42})"));
  CHECK(sender.publish(p + ".orders.paid", "[1]"));
  CHECK(sender.publish(p + ".audit", "{}"));
  CHECK(sender.publish(p + ".audit.login.failed", R"({"user":"ann"})"));
  // No pattern matches: the broker returns it, which is not an error.
  CHECK_FALSE(sender.publish(p + ".orders.paid.late", "{}"));

  REQUIRE(wait_until([&] { return lines_of(dir.file("hash")).size() == 2 && lines_of(dir.file("star")).size() == 2; },
                     10s));
  REQUIRE(wait_until([&] { return lines_of(dir.file("exact")).size() == 1; }, 10s));
  INFO(sbusd.log());
  CHECK(topics_in(dir.file("exact")) == std::vector<std::string>{p + ".orders.created"});
  CHECK(topics_in(dir.file("star")) == std::vector<std::string>{p + ".orders.created", p + ".orders.paid"});
  CHECK(topics_in(dir.file("hash")) == std::vector<std::string>{p + ".audit", p + ".audit.login.failed"});
  CHECK(lines_of(dir.file("exact"))[0] == R"({"topic":")" + p + R"(.orders.created","params":{"order":42}})");

  SECTION("sbus stats counts the events each event service handled") {
    const auto stats = sbus_test::run_cli([&] {
      std::vector<std::string> args{"stats", sbusd.node()};
      for (const std::string& arg : sbusd.cli_args()) args.push_back(arg);
      return args;
    }());
    INFO(stats.out << stats.err);
    CHECK(stats.exit_code == 0);
    bool star_line = false;
    std::istringstream lines(stats.out);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      std::string name, kind;
      long handled = -1;
      words >> name >> kind >> handled;
      if (name == "star.record") star_line = kind == "event" && handled == 2;
    }
    CHECK(star_line);
  }
}

TEST_CASE("test.record with keep_open writes each event's line to the file it opened at start", "[events]") {
  TempDir dir;
  const std::string p = sbus_test::topic_prefix();
  SbusdOptions options;
  options.services_yaml = recorder("kept.record", dir.file("kept"), {p + ".kept.*"}) + "      keep_open: \"true\"\n";
  SbusdProcess sbusd(options);
  // Opened by start(), before any event: the file is there, empty.
  REQUIRE(wait_until([&] { return std::filesystem::exists(dir.file("kept")); }, 10s));
  CHECK(lines_of(dir.file("kept")).empty());

  sbus::Sender sender(sbusd.sender_options());
  for (int n = 0; n < 20; ++n) CHECK(sender.publish(p + ".kept.created", "{\"n\":" + std::to_string(n) + "}"));
  // Each line is out of the process's buffer once its event is acked.
  REQUIRE(wait_until([&] { return lines_of(dir.file("kept")).size() == 20; }, 10s));
  std::vector<int> expected(20);
  for (int n = 0; n < 20; ++n) expected[static_cast<std::size_t>(n)] = n;
  CHECK(numbers_in(dir.file("kept")) == expected);
  INFO(sbusd.log());
  CHECK(sbusd.log().find("cannot open") == std::string::npos);
}

TEST_CASE("sbus publish says on stderr when nobody is subscribed, exits 0, and refuses a malformed topic",
          "[events][cli]") {
  TempDir dir;
  const std::string p = sbus_test::topic_prefix();
  SbusdOptions options;
  options.services_yaml = recorder("audit.record", dir.file("audit"), {p + ".audit.#"});
  SbusdProcess sbusd(options);
  const auto cli = [&](std::vector<std::string> args) {
    for (const std::string& arg : sbusd.cli_args()) args.push_back(arg);
    return sbus_test::run_cli(args);
  };

  const auto delivered = cli({"publish", p + ".audit.login", R"({"user":"ann"})"});
  INFO(delivered.err);
  CHECK(delivered.exit_code == 0);
  CHECK(delivered.err.empty());
  CHECK(wait_until([&] { return lines_of(dir.file("audit")).size() == 1; }, 10s));

  const auto nobody = cli({"publish", p + ".orders.created", "{}"});
  INFO(nobody.err);
  CHECK(nobody.exit_code == 0);
  CHECK(contains(nobody.err, "nobody is subscribed to " + p + ".orders.created"));

  const auto malformed = cli({"publish", p + ".orders.*", "{}"});
  CHECK(malformed.exit_code == 2);
  CHECK(contains(malformed.err, "'*' and '#' are for subscribing"));

  const auto not_json = cli({"publish", p + ".audit.x", "{oops"});
  CHECK(not_json.exit_code == 2);
  CHECK(lines_of(dir.file("audit")).size() == 1);
}

TEST_CASE("A plugin publishes through its ServiceContext's sender", "[events]") {
  TempDir dir;
  const std::string p = sbus_test::topic_prefix();
  SbusdOptions options;
  options.services_yaml =
      "  - name: test.relay\n    plugin: test\n" + recorder("audit.record", dir.file("audit"), {p + ".#"});
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());
  const sbus::CallResult routed =
      sender.call(sbusd.address("test.relay"), R"({"topic":")" + p + R"(.from.plugin","params":[7]})", 10s);
  INFO(routed.message);
  CHECK(routed.message == "true");
  REQUIRE(wait_until([&] { return lines_of(dir.file("audit")).size() == 1; }, 10s));
  CHECK(lines_of(dir.file("audit"))[0] == R"({"topic":")" + p + R"(.from.plugin","params":[7]})");
  const sbus::CallResult unrouted =
      sender.call(sbusd.address("test.relay"), R"({"topic":"nobody)" + p + R"(.x","params":[7]})", 10s);
  CHECK(unrouted.message == "false");
}

TEST_CASE("Without a group every subscribed node gets its own copy of each event", "[events]") {
  TempDir dir;
  const std::string p = sbus_test::topic_prefix();
  SbusdOptions first;
  first.services_yaml = recorder("audit.record", dir.file("first"), {p + ".orders.*"});
  SbusdOptions second;
  second.services_yaml = recorder("audit.record", dir.file("second"), {p + ".orders.*"});
  SbusdProcess a(first);
  SbusdProcess b(second);
  sbus::Sender sender(a.sender_options());
  for (int n = 0; n < 20; ++n) REQUIRE(sender.publish(p + ".orders.created", "{\"n\":" + std::to_string(n) + "}"));
  REQUIRE(wait_until(
      [&] { return numbers_in(dir.file("first")).size() >= 20 && numbers_in(dir.file("second")).size() >= 20; }, 15s));
  std::vector<int> all(20);
  for (int n = 0; n < 20; ++n) all[n] = n;
  std::vector<int> got_a = numbers_in(dir.file("first"));
  std::vector<int> got_b = numbers_in(dir.file("second"));
  std::sort(got_a.begin(), got_a.end());
  std::sort(got_b.begin(), got_b.end());
  CHECK(got_a == all);
  CHECK(got_b == all);
}

TEST_CASE("A group of two agents handles 1,000 events, each exactly once, both taking a share", "[events][group]") {
  TempDir dir;
  const std::string p = sbus_test::topic_prefix();
  const std::string group = "g" + sbus_test::unique_node();
  SbusdOptions first;
  first.services_yaml = recorder("bill.take", dir.file("first"), {p + ".orders.paid"}, group);
  SbusdOptions second;
  second.services_yaml = recorder("bill.take", dir.file("second"), {p + ".orders.paid"}, group);
  SbusdProcess a(first);
  SbusdProcess b(second);
  sbus::Sender sender(a.sender_options());
  constexpr int kEvents = 1000;
  for (int n = 0; n < kEvents; ++n) {
    sender.publish_async(p + ".orders.paid", "{\"n\":" + std::to_string(n) + "}");
    if (n % 64 == 63) REQUIRE(sender.wait_published(10s) == 0);
  }
  REQUIRE(sender.wait_published(10s) == 0);
  const auto total = [&] { return numbers_in(dir.file("first")).size() + numbers_in(dir.file("second")).size(); };
  REQUIRE(wait_until([&] { return total() >= kEvents; }, 60s, 100ms));
  // Anything more would come late: give it a moment to show.
  std::this_thread::sleep_for(300ms);
  std::vector<int> seen = numbers_in(dir.file("first"));
  const std::size_t share_a = seen.size();
  const std::vector<int> from_b = numbers_in(dir.file("second"));
  seen.insert(seen.end(), from_b.begin(), from_b.end());
  std::sort(seen.begin(), seen.end());
  std::vector<int> all(kEvents);
  for (int n = 0; n < kEvents; ++n) all[n] = n;
  std::cout << "[figure] group of two: " << share_a << " and " << from_b.size() << " of " << kEvents << " events\n";
  CHECK(seen == all);
  CHECK(share_a > 0);
  CHECK(!from_b.empty());
}

TEST_CASE("A reload adds and removes topics, and loses no event of a topic that stays subscribed", "[events][reload]") {
  TempDir dir;
  const std::string p = sbus_test::topic_prefix();
  SbusdOptions options;
  options.services_yaml = recorder("audit.record", dir.file("audit"), {p + ".keep", p + ".old"});
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());
  REQUIRE(sender.publish(p + ".old", "{}"));
  REQUIRE_FALSE(sender.publish(p + ".new", "{}"));

  // A stream of events to the topic that stays, through the reload.
  std::atomic<bool> stop{false};
  std::atomic<int> published{0};
  std::string stream_error;
  std::thread stream([&] {
    try {
      sbus::Sender streamer(sbusd.sender_options());
      for (int n = 0; n < 2000 && !stop; ++n) {
        if (!streamer.publish(p + ".keep", "{\"n\":" + std::to_string(n) + "}")) {
          stream_error = "nobody subscribed to the kept topic at event " + std::to_string(n);
          return;
        }
        published = n + 1;
        std::this_thread::sleep_for(5ms);
      }
    } catch (const std::exception& e) {
      stream_error = e.what();
    }
  });
  REQUIRE(wait_until([&] { return published > 20; }, 10s));

  std::string config = sbus_test::read_file(sbusd.config_path());
  const std::size_t at = config.find("\"" + p + ".old\"");
  REQUIRE(at != std::string::npos);
  config.replace(at, p.size() + 6, "\"" + p + ".new\"");
  sbus_test::write_file(sbusd.config_path(), config);
  sbusd.signal(SIGHUP);

  // The new topic is routed once the new worker has bound it, the old one
  // no longer once it has unbound it.
  const bool switched = wait_until(
      [&] { return sender.publish(p + ".new", R"({"probe":1})") && !sender.publish(p + ".old", "{}"); }, 20s, 200ms);
  std::this_thread::sleep_for(300ms);
  stop = true;
  stream.join();
  INFO(sbusd.log());
  REQUIRE(switched);
  CHECK(stream_error.empty());
  CHECK(contains(sbusd.log(), "replacing worker pid"));
  CHECK(contains(sbusd.log(), "no longer subscribes to " + p + ".old"));

  const int sent = published;
  REQUIRE(wait_until([&] { return static_cast<int>(numbers_in(dir.file("audit")).size()) >= sent; }, 20s, 100ms));
  std::vector<int> kept = numbers_in(dir.file("audit"));
  std::sort(kept.begin(), kept.end());
  kept.erase(std::unique(kept.begin(), kept.end()), kept.end());
  std::vector<int> all(sent);
  for (int n = 0; n < sent; ++n) all[n] = n;
  std::cout << "[figure] reload under a stream: " << sent << " events to the kept topic, all handled\n";
  CHECK(kept == all);
  const std::vector<std::string> topics = topics_in(dir.file("audit"));
  CHECK(std::count(topics.begin(), topics.end(), p + ".new") >= 1);
}

// A reload binds a service's new patterns before it unbinds its retired
// ones. Were it the other way round, a topic moving from p.orders.* to
// p.orders.# would be unrouted between the two, however briefly: the
// stream goes out 64 events at a time as fast as the broker confirms them
// (an event every fraction of a millisecond), and the moved pattern is the
// last of 21, so an unbind-first order would leave it unbound for 20 binds.
TEST_CASE("A reload that moves a topic to a wider pattern leaves it unrouted for no event of a fast stream",
          "[events][reload]") {
  TempDir dir;
  const std::string p = sbus_test::topic_prefix();
  std::vector<std::string> topics;
  for (int i = 0; i < 20; ++i) topics.push_back(p + ".other" + std::to_string(i));
  topics.push_back(p + ".orders.*");
  SbusdOptions options;
  options.services_yaml = recorder("audit.record", dir.file("audit"), topics);
  SbusdProcess sbusd(options);

  constexpr int kMaxEvents = 40000;
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::atomic<std::size_t> unrouted{0};
  std::string stream_error;
  std::thread stream([&] {
    try {
      sbus::Sender streamer(sbusd.sender_options());
      const auto until = std::chrono::steady_clock::now() + 30s;
      for (int n = 0; n < kMaxEvents && !stop && std::chrono::steady_clock::now() < until;) {
        for (const int end = n + 64; n < end; ++n) {
          streamer.publish_async(p + ".orders.created", "{\"n\":" + std::to_string(n) + "}");
        }
        unrouted += streamer.wait_published(10s);
        sent = n;
      }
    } catch (const std::exception& e) {
      stream_error = e.what();
    }
  });
  REQUIRE(wait_until([&] { return sent >= 256 || !stream_error.empty(); }, 10s));

  std::string config = sbus_test::read_file(sbusd.config_path());
  const std::size_t at = config.find("\"" + p + ".orders.*\"");
  REQUIRE(at != std::string::npos);
  config.replace(at + 1 + p.size() + 8, 1, "#");
  sbus_test::write_file(sbusd.config_path(), config);
  sbusd.signal(SIGHUP);
  const bool moved =
      wait_until([&] { return contains(sbusd.log(), "no longer subscribes to " + p + ".orders.*"); }, 20s, 20ms);
  std::this_thread::sleep_for(200ms);
  stop = true;
  stream.join();
  INFO(sbusd.log());
  REQUIRE(moved);
  REQUIRE(stream_error.empty());
  REQUIRE(unrouted == 0);

  const int total = sent;
  REQUIRE(wait_until([&] { return static_cast<int>(numbers_in(dir.file("audit")).size()) >= total; }, 30s, 100ms));
  std::vector<int> handled = numbers_in(dir.file("audit"));
  std::sort(handled.begin(), handled.end());
  handled.erase(std::unique(handled.begin(), handled.end()), handled.end());
  std::vector<int> all(total);
  for (int n = 0; n < total; ++n) all[n] = n;
  std::cout << "[figure] reload moving a pattern under a fast stream: " << total << " events, " << unrouted
            << " unrouted\n";
  CHECK(handled == all);
}

TEST_CASE("An event whose service keeps throwing, or that cannot be decoded, goes to the node's error queue",
          "[events][errors]") {
  TempDir dir;
  const std::string p = sbus_test::topic_prefix();
  SbusdOptions options;
  options.extra_yaml = "max_retries: 1\n";
  options.services_yaml = "  - name: test.fail_event\n    plugin: test\n    kind: event\n    topics: [\"" + p +
                          ".fail\"]\n" + recorder("audit.record", dir.file("audit"), {p + ".ok"});
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());
  REQUIRE(sender.publish(p + ".fail", R"({"n":1})"));

  std::vector<sbus::DeadLetter> letters;
  REQUIRE(wait_until([&] { return !(letters = sender.list_errors(sbusd.node())).empty(); }, 15s, 100ms));
  REQUIRE(letters.size() == 1);
  CHECK(contains(letters[0].header("x-sbus-error"), "test.fail_event always fails, also for " + p + ".fail"));
  CHECK(letters[0].header("x-sbus-service") == "test.fail_event");
  CHECK(letters[0].header("x-sbus-event") == "test.fail_event");
  CHECK(letters[0].header("x-sbus-attempts") == "2");

  // Not XML, straight onto the events exchange: refused, kept with why.
  sbus_test::RawAmqp raw;
  raw.publish("sbus.events", p + ".ok", "this is not an event");
  REQUIRE(wait_until([&] { return (letters = sender.list_errors(sbusd.node())).size() == 2; }, 15s, 100ms));
  CHECK(letters[1].header("x-sbus-refused") == "malformed_xml");
  CHECK(letters[1].header("x-sbus-event") == "audit.record");

  // The services go on.
  REQUIRE(sender.publish(p + ".ok", "[1]"));
  CHECK(wait_until([&] { return lines_of(dir.file("audit")).size() == 1; }, 10s));
}

TEST_CASE("sbusd --check refuses kind: event for a service that does not declare events", "[events][check]") {
  TempDir dir;
  const std::string config = dir.file("sbusd.yaml");
  sbus_test::write_file(config, "node: " + sbus_test::unique_node() + "\nbrokers:\n  - " + sbus_test::broker_uri() +
                                    "\nsecret_file: " + sbus_test::write_secret(dir.path()) +
                                    "\nstate_dir: " + dir.file("state") +
                                    "\nplugin_dir: " SBUS_BUILD_DIR
                                    "/plugins\nservices:\n"
                                    "  - name: test.echo\n"  // 8
                                    "    plugin: test\n"
                                    "    kind: event\n"
                                    "    topics: [a.b]\n");
  const auto check = sbus_test::run_program(SBUS_BUILD_DIR "/bin/sbusd", {"--config", config, "--check"});
  INFO(check.err);
  CHECK(check.exit_code == 1);
  CHECK(contains(check.err, config + ":8: services[0].kind: event, but service 'echo' of plugin"));
}

TEST_CASE("sbusd --check --start names a keep_open of test.record that is neither true nor false", "[events][check]") {
  TempDir dir;
  const std::string config = dir.file("sbusd.yaml");
  sbus_test::write_file(config, "node: " + sbus_test::unique_node() + "\nbrokers:\n  - " + sbus_test::broker_uri() +
                                    "\nsecret_file: " + sbus_test::write_secret(dir.path()) + "\nstate_dir: " +
                                    dir.file("state") + "\nplugin_dir: " SBUS_BUILD_DIR "/plugins\nservices:\n" +
                                    recorder("kept.record", dir.file("kept"), {"a.*"}) + "      keep_open: \"yes\"\n");
  const auto check = sbus_test::run_program(SBUS_BUILD_DIR "/bin/sbusd", {"--config", config, "--check", "--start"});
  INFO(check.err);
  CHECK(check.exit_code == 1);
  CHECK(contains(check.err,
                 "services[0]: kept.record: start failed: test.record: keep_open is true or false, not 'yes'"));
  // Refused before it opened anything.
  CHECK_FALSE(std::filesystem::exists(dir.file("kept")));
}

TEST_CASE("Publishing where no sbusd declared the events exchange is nobody subscribed, and the sender goes on",
          "[events]") {
  SbusdProcess sbusd;
  sbus::SenderOptions options = sbusd.sender_options();
  options.events_exchange = "nowhere." + sbus_test::unique_node();
  sbus::Sender sender(options);
  CHECK_FALSE(sender.publish("orders.created", "{}"));
  CHECK_FALSE(sender.publish("orders.created", "{}"));
  sender.publish_async("orders.created", "{}");
  CHECK(sender.wait_published(10s) == 1);
  // The same connection still sends and calls.
  sender.send(sbusd.address("test.record"), R"({"after":"404"})");
  CHECK(sender.call(sbusd.address("math.add"), "[1,2]", 10s).message == "3");
  CHECK(wait_until([&] { return contains(sbus_test::read_file(sbusd.record_file()), "404"); }, 10s));
}

TEST_CASE("A deferred event reaches its subscribers no earlier than due, through the CLI and the library",
          "[events][defer]") {
  TempDir dir;
  const std::string p = sbus_test::topic_prefix();
  SbusdOptions options;
  options.services_yaml = recorder("later.record", dir.file("later"), {p + ".remind.*"});
  SbusdProcess sbusd(options);

  SECTION("sbus publish --delay") {
    std::vector<std::string> args = sbusd.cli_args();
    for (const std::string& arg : {std::string("publish"), p + ".remind.cli", std::string(R"({"n":1})"),
                                   std::string("--delay"), std::string("700ms")}) {
      args.push_back(arg);
    }
    const auto sent = std::chrono::steady_clock::now();
    const sbus_test::ProcessResult publish = sbus_test::run_cli(args);
    INFO(publish.out << publish.err);
    REQUIRE(publish.exit_code == 0);
    // Held by the levels: not there while it is not due.
    std::this_thread::sleep_for(300ms);
    CHECK(lines_of(dir.file("later")).empty());
    REQUIRE(wait_until([&] { return lines_of(dir.file("later")).size() == 1; }, 15s));
    INFO(sbusd.log());
    CHECK(std::chrono::steady_clock::now() - sent >= 700ms);
    CHECK(topics_in(dir.file("later")) == std::vector<std::string>{p + ".remind.cli"});
  }
  SECTION("Sender::publish with SendOptions, and a bad delay refused with nothing sent") {
    sbus::Sender sender(sbusd.sender_options());
    sbus::SendOptions bad;
    bad.delay = std::chrono::milliseconds(-5);
    CHECK_THROWS_AS(sender.publish(p + ".remind.bad", "{}", bad), sbus::SenderError);
    sbus::SendOptions later;
    later.delay = 500ms;
    const auto sent = std::chrono::steady_clock::now();
    CHECK(sender.publish(p + ".remind.lib", R"({"n":2})", later));
    REQUIRE(wait_until([&] { return lines_of(dir.file("later")).size() == 1; }, 15s));
    INFO(sbusd.log());
    CHECK(std::chrono::steady_clock::now() - sent >= 500ms);
    CHECK(topics_in(dir.file("later")) == std::vector<std::string>{p + ".remind.lib"});
    CHECK(numbers_in(dir.file("later")) == std::vector<int>{2});
  }
}
