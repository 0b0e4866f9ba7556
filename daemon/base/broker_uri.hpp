// An AMQP broker address parsed from amqp://user:pass@host:port/vhost (or
// amqps://). The password never appears in redacted().
#pragma once

#include <string>
#include <string_view>

namespace sbus {

struct BrokerUri {
  std::string user = "guest";
  std::string password = "guest";
  std::string host = "localhost";
  int port = 5672;
  std::string vhost = "/";
  bool tls = false;

  // amqp://user@host:port/vhost, for logs and error messages.
  std::string redacted() const;
};

// Parses `text`; on failure returns false with the reason in `error`.
bool parse_broker_uri(std::string_view text, BrokerUri* uri, std::string* error);

}  // namespace sbus
