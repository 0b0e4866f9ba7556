// parse_broker_uri: RabbitMQ's AMQP URI scheme, as rabbitmq-c's
// amqp_parse_url reads it, without linking rabbitmq-c into the supervisor.
#include <catch2/catch.hpp>

#include <string>

#include "base/broker_uri.hpp"

namespace {

sbus::BrokerUri parse_ok(const std::string& text) {
  sbus::BrokerUri uri;
  std::string error;
  INFO(text);
  REQUIRE(sbus::parse_broker_uri(text, &uri, &error));
  CHECK(error.empty());
  return uri;
}

std::string parse_error(const std::string& text) {
  sbus::BrokerUri uri;
  std::string error;
  INFO(text);
  REQUIRE_FALSE(sbus::parse_broker_uri(text, &uri, &error));
  return error;
}

}  // namespace

TEST_CASE("A full AMQP URI gives each part", "[broker_uri]") {
  const sbus::BrokerUri uri = parse_ok("amqp://alice:s3cret@broker-1.example.com:5673/orders");
  CHECK(uri.user == "alice");
  CHECK(uri.password == "s3cret");
  CHECK(uri.host == "broker-1.example.com");
  CHECK(uri.port == 5673);
  CHECK(uri.vhost == "orders");
  CHECK_FALSE(uri.tls);
  CHECK(uri.redacted() == "amqp://alice@broker-1.example.com:5673/orders");
}

TEST_CASE("Parts left out take RabbitMQ's defaults", "[broker_uri]") {
  sbus::BrokerUri uri = parse_ok("amqp://rabbit");
  CHECK(uri.user == "guest");
  CHECK(uri.password == "guest");
  CHECK(uri.port == 5672);
  CHECK(uri.vhost == "/");
  CHECK(parse_ok("amqp://rabbit/").vhost == "/");
  CHECK(parse_ok("amqp://bob@rabbit").password == "guest");
  uri = parse_ok("amqps://rabbit");
  CHECK(uri.tls);
  CHECK(uri.port == 5671);
  CHECK(uri.redacted() == "amqps://guest@rabbit:5671/%2f");
}

TEST_CASE("User, password and vhost are percent-decoded", "[broker_uri]") {
  const sbus::BrokerUri uri = parse_ok("amqp://us%40er:p%3Aa%2Fss%40@127.0.0.1:5672/%2f");
  CHECK(uri.user == "us@er");
  CHECK(uri.password == "p:a/ss@");
  CHECK(uri.vhost == "/");
  CHECK(parse_ok("amqp://h/my%20vhost").vhost == "my vhost");
}

TEST_CASE("An IPv6 host is written in brackets", "[broker_uri]") {
  sbus::BrokerUri uri = parse_ok("amqp://guest:guest@[::1]:5673/%2f");
  CHECK(uri.host == "::1");
  CHECK(uri.port == 5673);
  CHECK(uri.redacted() == "amqp://guest@[::1]:5673/%2f");
  CHECK(parse_ok("amqp://[fe80::1]").port == 5672);
}

TEST_CASE("A malformed URI is refused with the reason", "[broker_uri]") {
  CHECK(parse_error("http://rabbit").find("not an AMQP URI") != std::string::npos);
  CHECK(parse_error("amqp://").find("no host") != std::string::npos);
  CHECK(parse_error("amqp://guest:guest@:5672/").find("no host") != std::string::npos);
  CHECK(parse_error("amqp://rabbit:notaport/").find("port") != std::string::npos);
  CHECK(parse_error("amqp://rabbit:70000/").find("port") != std::string::npos);
  CHECK(parse_error("amqp://rabbit:0/").find("port") != std::string::npos);
  CHECK(parse_error("amqp://rabbit:/").find("empty port") != std::string::npos);
  CHECK(parse_error("amqp://[::1/").find("']'") != std::string::npos);
  CHECK(parse_error("amqp://[::1]x/").find("after ']'") != std::string::npos);
  CHECK(parse_error("amqp://rabbit/a/b").find("%2f") != std::string::npos);
  CHECK(parse_error("amqp://rabbit/%zz").find("percent-encoding") != std::string::npos);
  CHECK(parse_error("amqp://us%4:pw@rabbit/").find("percent-encoding") != std::string::npos);
  CHECK(parse_error("amqp://rabbit/?heartbeat=5").find("query") != std::string::npos);
}
