#include "amqp/tls_socket.hpp"

#include "base/error.hpp"
#include "base/module_file.hpp"

namespace sbus {
namespace {

constexpr const char* kModuleName = "sbus-tls.so";

struct LoadedModule {
  TlsAttachFunction attach = nullptr;
  std::string error;
};

// Once per process: the module stays loaded until the process exits, since
// every socket it made points into its code.
const LoadedModule& loaded_module() {
  static const LoadedModule module = [] {
    LoadedModule loaded;
    loaded.attach = load_tls_module(tls_module_candidates(), &loaded.error);
    return loaded;
  }();
  return module;
}

}  // namespace

std::vector<std::string> tls_module_candidates() {
  return module_candidates("SBUS_TLS_MODULE", kModuleName, SBUS_TLS_MODULE_INSTALLED);
}

TlsAttachFunction load_tls_module(const std::vector<std::string>& candidates, std::string* error) {
  return reinterpret_cast<TlsAttachFunction>(
      load_module_entry(candidates, "TLS", kModuleName, kTlsAttachSymbol, error));
}

std::unique_ptr<TlsSocket> TlsSocket::attach(amqp_connection_state_t state, const BrokerUri& uri,
                                             const TlsOptions& options) {
  const std::string failed = "TLS setup for " + uri.redacted() + " failed: ";
  const LoadedModule& module = loaded_module();
  if (module.attach == nullptr) throw AmqpError(failed + module.error);
  std::string error;
  std::unique_ptr<TlsSocket> socket(module.attach(SBUS_VERSION, state, &uri.host, &options, &error));
  if (!socket) throw AmqpError(failed + error);
  return socket;
}

bool TlsSocket::is_tls_status(int status) {
  return status == AMQP_STATUS_SSL_ERROR || status == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED ||
         status == AMQP_STATUS_SSL_PEER_VERIFY_FAILED || status == AMQP_STATUS_SSL_CONNECTION_FAILED;
}

}  // namespace sbus
