// The examples of docs/plugins.md and docs/client.md, run: sbusd serves the
// shop plugin (docs/examples/shop_plugin.cpp) on the test broker and the
// shop client (docs/examples/shop_client.cpp) calls it.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "harness.hpp"

using namespace std::chrono_literals;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("The docs' example client calls the docs' example plugin as the docs show", "[docs][examples]") {
  sbus_test::TempDir dir;
  const std::string orders = dir.file("orders.txt");
  sbus_test::SbusdOptions options;
  options.log_level = "info";
  options.services_yaml =
      "  - name: shop.price\n"
      "    plugin: shop\n"
      "    options:\n"
      "      apple: \"0.5\"\n"
      "      pear: \"0.8\"\n"
      "  - name: shop.order\n"
      "    plugin: shop\n"
      "    kind: message\n"
      "    options:\n"
      "      file: " +
      orders + "\n";
  sbus_test::SbusdProcess sbusd(options);

  const auto client = sbus_test::run_program(SBUS_BUILD_DIR "/bin/shop_client",
                                             {sbusd.node(), sbus_test::broker_uri(), sbusd.secret_file()}, 60s);
  INFO(client.err);
  CHECK(client.exit_code == 0);
  CHECK(client.out ==
        "ping: PONG\n"
        R"(price: {"item":"apple","count":3,"total":1.5})"
        "\n"
        "error: unknown_item: no price for durian\n"
        "order sent\n"
        R"(async 1: {"item":"apple","count":1,"total":0.5})"
        "\n"
        R"(async 2: {"item":"apple","count":2,"total":1.0})"
        "\n"
        R"(async 3: {"item":"apple","count":3,"total":1.5})"
        "\n");

  // The message, priced by shop.order through shop.price, and its log line.
  CHECK(sbus_test::wait_until([&] { return sbus_test::read_file(orders) == "2 x pear = 1.6\n"; }, 10s));
  CHECK(sbus_test::wait_until([&] { return contains(sbusd.log(), "] shop.order: order "); }, 5s));
  const std::string log = sbusd.log();
  INFO(log);
  CHECK(contains(log, "] shop.price: serving 2 prices"));
  CHECK(contains(log, ": 2 x pear = 1.6"));
  // log_level info: the price service's debug lines are not written.
  CHECK_FALSE(contains(log, "] shop.price: call "));
}

TEST_CASE("The docs' example client says what failed when no broker answers", "[docs][examples]") {
  sbus_test::TempDir dir;
  const std::string secret = sbus_test::write_secret(dir.path());
  sbus_test::DeadPort dead;
  const auto client = sbus_test::run_program(SBUS_BUILD_DIR "/bin/shop_client", {"nowhere", dead.uri(), secret}, 30s);
  CHECK(client.exit_code == 4);
  CHECK(contains(client.err, "shop_client: "));
  CHECK(contains(client.err, "connection refused"));
}

TEST_CASE("An order the docs' example plugin cannot price is retried, then kept in the error queue",
          "[docs][examples]") {
  sbus_test::TempDir dir;
  sbus_test::SbusdOptions options;
  options.extra_yaml = "max_retries: 1\n";
  options.services_yaml =
      "  - name: shop.price\n"
      "    plugin: shop\n"
      "    options: {apple: \"0.5\"}\n"
      "  - name: shop.order\n"
      "    plugin: shop\n"
      "    kind: message\n"
      "    options:\n"
      "      file: " +
      dir.file("orders.txt") + "\n";
  sbus_test::SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());
  sender.send(sbusd.address("shop.order"), R"({"item": "durian", "count": 1})");

  std::vector<sbus::DeadLetter> letters;
  CHECK(sbus_test::wait_until(
      [&] {
        letters = sender.list_errors(sbusd.node());
        return !letters.empty();
      },
      10s, 100ms));
  REQUIRE(letters.size() == 1);
  CHECK(letters[0].header("x-sbus-service") == "shop.order");
  CHECK(letters[0].header("x-sbus-attempts") == "2");
  CHECK(letters[0].header("x-sbus-error") == "shop.price: unknown_item: no price for durian");
  CHECK(sbus_test::read_file(dir.file("orders.txt")).empty());
}

TEST_CASE("The docs' example config passes sbusd --check with the example plugin", "[docs][examples]") {
  sbus_test::TempDir dir;
  const std::string secret = sbus_test::write_secret(dir.path());
  // The docs' file as it is, with a state folder of the test's own.
  const std::string config = dir.file("shop.yaml");
  sbus_test::write_file(config, sbus_test::read_file(SBUS_SOURCE_DIR "/docs/examples/shop.yaml") +
                                    "\nstate_dir: " + dir.file("state") + "\n");
  const auto check = sbus_test::run_program(SBUS_BUILD_DIR "/bin/sbusd",
                                            {"--config", config, "--check", "--broker", sbus_test::broker_uri(),
                                             "--plugin-dir", SBUS_BUILD_DIR "/plugins", "--secret-file", secret},
                                            30s);
  INFO(check.out << check.err);
  CHECK(check.exit_code == 0);
  CHECK(contains(check.out, "2 service(s)"));
}

TEST_CASE("The README's adder plugin adds and refuses what is not a list of integers", "[docs][examples]") {
  sbus_test::SbusdOptions options;
  options.services_yaml = "  - name: adder.add\n    plugin: adder\n";
  sbus_test::SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());
  CHECK(sender.call(sbusd.address("adder.add"), "[1,2,3]", 10s).message == "6");
  const sbus::CallResult refused = sender.call(sbusd.address("adder.add"), R"({"a":1})", 10s);
  CHECK(refused.error_code == "invalid_params");
  CHECK(sender.call(sbusd.address("adder.add"), "[1,\"x\"]", 10s).error_code == "invalid_params");
}
