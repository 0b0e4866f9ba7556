#include "amqp/tls_socket.hpp"

#include <dlfcn.h>
#include <link.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "base/error.hpp"

namespace sbus {
namespace {

namespace fs = std::filesystem;

constexpr const char* kModuleName = "sbus-tls.so";

// The folder of the program or shared object that holds this code.
fs::path own_folder() {
  Dl_info info{};
  link_map* map = nullptr;
  if (dladdr1(reinterpret_cast<void*>(&own_folder), &info, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) == 0 ||
      map == nullptr) {
    return {};
  }
  // The main program's link map has no name.
  std::error_code ignored;
  const fs::path file = map->l_name[0] == '\0' ? fs::read_symlink("/proc/self/exe", ignored) : fs::path(map->l_name);
  return fs::absolute(file, ignored).parent_path();
}

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
  if (const char* path = std::getenv("SBUS_TLS_MODULE"); path != nullptr && *path != '\0') return {path};
  std::vector<std::string> candidates;
  const fs::path here = own_folder();
  if (!here.empty()) {
    candidates.push_back((here / kModuleName).string());
    candidates.push_back((here.parent_path() / "libexec" / "sbus" / kModuleName).lexically_normal().string());
  }
  const std::string installed = SBUS_TLS_MODULE_INSTALLED;
  if (std::find(candidates.begin(), candidates.end(), installed) == candidates.end()) candidates.push_back(installed);
  return candidates;
}

TlsAttachFunction load_tls_module(const std::vector<std::string>& candidates, std::string* error) {
  std::string tried;
  for (const std::string& path : candidates) {
    if (!tried.empty()) tried += "; ";
    struct stat status {};
    if (::stat(path.c_str(), &status) != 0) {
      tried += path + ": " + (errno == ENOENT ? std::string("no such file") : std::strerror(errno));
      continue;
    }
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = dlerror();
      tried += path + ": " + (why != nullptr ? why : "cannot be loaded");
      continue;
    }
    if (void* entry = dlsym(handle, kTlsAttachSymbol)) return reinterpret_cast<TlsAttachFunction>(entry);
    tried += path + ": not an sbus TLS module (no " + kTlsAttachSymbol + ")";
    dlclose(handle);
  }
  *error = "the TLS module " + std::string(kModuleName) + " cannot be loaded (" + tried + ")";
  return nullptr;
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
