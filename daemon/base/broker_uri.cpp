#include "base/broker_uri.hpp"

#include <charconv>

namespace sbus {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes; false on a truncated or non-hex escape.
bool percent_decode(std::string_view text, std::string* out) {
  out->clear();
  out->reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out->push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) return false;
    const int high = hex_value(text[i + 1]);
    const int low = hex_value(text[i + 2]);
    if (high < 0 || low < 0) return false;
    out->push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return true;
}

// HOST[:PORT] of an AMQP URI into uri->host and uri->port (a port left
// out keeps the one the scheme gave it).
bool parse_host_port(std::string_view authority, BrokerUri* uri, std::string* error) {
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      *error = "malformed AMQP URI: '[' without ']' around an IPv6 address";
      return false;
    }
    uri->host = std::string(authority.substr(1, close - 1));
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        *error = "malformed AMQP URI: unexpected text after ']'";
        return false;
      }
      port_text = rest.substr(1);
      if (port_text.empty()) {
        *error = "malformed AMQP URI: empty port";
        return false;
      }
    }
  } else {
    const std::size_t colon = authority.find(':');
    uri->host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) {
        *error = "malformed AMQP URI: empty port";
        return false;
      }
    }
  }
  if (uri->host.empty()) {
    *error = "malformed AMQP URI: no host";
    return false;
  }
  if (!port_text.empty()) {
    int port = 0;
    auto [end, status] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (status != std::errc() || end != port_text.data() + port_text.size() || port < 1 || port > 65535) {
      *error = "malformed AMQP URI: port must be a number from 1 to 65535";
      return false;
    }
    uri->port = port;
  }
  return true;
}

}  // namespace

std::string BrokerUri::redacted() const {
  std::string vhost_part = vhost == "/" ? "%2f" : vhost;
  std::string host_part = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return std::string(tls ? "amqps://" : "amqp://") + user + "@" + host_part + ":" + std::to_string(port) + "/" +
         vhost_part;
}

// amqp[s]://[USER[:PASSWORD]@]HOST[:PORT][/VHOST], as RabbitMQ's URI spec
// has it: USER, PASSWORD and VHOST may be percent-encoded; HOST is a name,
// an IPv4 address or an IPv6 address in brackets; what is left out takes
// RabbitMQ's defaults (guest, guest, localhost, 5672 or 5671, "/").
bool parse_broker_uri(std::string_view text, BrokerUri* uri, std::string* error) {
  BrokerUri parsed;
  if (text.rfind("amqp://", 0) == 0) {
    text.remove_prefix(7);
  } else if (text.rfind("amqps://", 0) == 0) {
    text.remove_prefix(8);
    parsed.tls = true;
    parsed.port = 5671;
  } else {
    *error = "not an AMQP URI (expected amqp://user:password@host:port/vhost)";
    return false;
  }
  if (text.find_first_of("?#") != std::string_view::npos) {
    *error = "malformed AMQP URI: query strings and fragments are not supported";
    return false;
  }

  std::string_view authority = text.substr(0, text.find('/'));
  const bool has_path = authority.size() < text.size();
  const std::string_view path = has_path ? text.substr(authority.size() + 1) : std::string_view();

  // The user info ends at the last '@': a password may hold an encoded one.
  if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    const std::size_t colon = userinfo.find(':');
    if (!percent_decode(userinfo.substr(0, colon), &parsed.user) ||
        (colon != std::string_view::npos && !percent_decode(userinfo.substr(colon + 1), &parsed.password))) {
      *error = "malformed AMQP URI: bad percent-encoding in the user or password";
      return false;
    }
  }

  if (!parse_host_port(authority, &parsed, error)) return false;

  if (has_path) {
    if (path.find('/') != std::string_view::npos) {
      *error = "malformed AMQP URI: a '/' in the vhost must be written %2f";
      return false;
    }
    if (!percent_decode(path, &parsed.vhost)) {
      *error = "malformed AMQP URI: bad percent-encoding in the vhost";
      return false;
    }
  }
  // An empty path is the default vhost, as with the AMQP URI spec.
  if (parsed.vhost.empty()) parsed.vhost = "/";
  *uri = std::move(parsed);
  return true;
}

}  // namespace sbus
