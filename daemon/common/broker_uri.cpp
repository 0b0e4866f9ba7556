#include "common/broker_uri.hpp"

#include <amqp.h>

#include <vector>

namespace sbus {

std::string BrokerUri::redacted() const {
  std::string vhost_part = vhost == "/" ? "%2f" : vhost;
  return std::string(tls ? "amqps://" : "amqp://") + user + "@" + host + ":" +
         std::to_string(port) + "/" + vhost_part;
}

bool parse_broker_uri(std::string_view text, BrokerUri* uri, std::string* error) {
  if (text.rfind("amqp://", 0) != 0 && text.rfind("amqps://", 0) != 0) {
    *error = "not an AMQP URI (expected amqp://user:password@host:port/vhost)";
    return false;
  }
  // amqp_parse_url decodes in place and points into the buffer.
  std::vector<char> buffer(text.begin(), text.end());
  buffer.push_back('\0');
  amqp_connection_info info{};
  amqp_default_connection_info(&info);
  int status = amqp_parse_url(buffer.data(), &info);
  if (status != AMQP_STATUS_OK) {
    *error = std::string("malformed AMQP URI: ") + amqp_error_string2(status);
    return false;
  }
  if (info.host == nullptr || *info.host == '\0') {
    *error = "malformed AMQP URI: no host";
    return false;
  }
  uri->user = info.user;
  uri->password = info.password;
  uri->host = info.host;
  uri->port = info.port;
  uri->vhost = info.vhost;
  uri->tls = info.ssl != 0;
  // rabbitmq-c turns an empty path into "/", as the AMQP URI spec's
  // default vhost; "%2f" decodes to "/" too.
  if (uri->vhost.empty()) uri->vhost = "/";
  return true;
}

}  // namespace sbus
