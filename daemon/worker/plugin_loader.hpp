// Loads service objects from plugin shared objects with Boost.DLL, each
// from a private copy of its file (plugin_image.hpp).
//
// A plugin exports one PluginDescriptor (see sbus/plugin.hpp). The loader
// reads its ABI version before anything else and refuses a mismatch; it
// never calls into a plugin whose version differs. It also refuses a
// descriptor it cannot use (null names, no services, kinds this sbusd does
// not know), and a service configured for a kind it does not serve.
#pragma once

#include <boost/dll/shared_library.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <sbus/plugin.hpp>

#include "config/config.hpp"

namespace sbus {

// A service object together with the library that holds its code. The
// object is destroyed before the library is unloaded.
class LoadedService {
 public:
  LoadedService(std::shared_ptr<boost::dll::shared_library> library, std::unique_ptr<Service> service,
                std::string version = {})
      : library_(std::move(library)), service_(std::move(service)), version_(std::move(version)) {}
  LoadedService(LoadedService&&) noexcept = default;
  LoadedService& operator=(LoadedService&& other) noexcept {
    service_ = std::move(other.service_);
    library_ = std::move(other.library_);
    version_ = std::move(other.version_);
    return *this;
  }
  ~LoadedService() { service_.reset(); }

  Service& service() { return *service_; }
  // What the plugin's SBUS_PLUGIN_VERSION says; empty when it says nothing.
  const std::string& version() const { return version_; }

 private:
  // Declared first: destroyed last.
  std::shared_ptr<boost::dll::shared_library> library_;
  std::unique_ptr<Service> service_;
  std::string version_;
};

// The SDK's Kind for a config's `kind:` (rpc: Kind::kCall).
Kind sdk_kind(ServiceKind kind);
// The YAML's words for a set of kinds: "rpc", "message", "rpc and message".
std::string kinds_text(Kind kinds);

class PluginLoader {
 public:
  // Loads `path` (once; later calls reuse it) and creates the service
  // `export_name` of it, which must serve `kind`. Throws PluginError naming
  // the file and the cause.
  LoadedService create(const std::string& path, const std::string& export_name, Kind kind);

  // The descriptor of `path`, loading it if needed. Throws PluginError.
  const PluginDescriptor& descriptor(const std::string& path);

  // The version `path` states (SBUS_PLUGIN_VERSION), loading it if needed;
  // empty when it states none. Throws PluginError.
  const std::string& version(const std::string& path);

  // The service `export_name` of `path`, loading it if needed. Throws
  // PluginError listing the services the plugin has.
  const ServiceFactory& find(const std::string& path, const std::string& export_name);

 private:
  struct Plugin {
    std::shared_ptr<boost::dll::shared_library> library;
    const PluginDescriptor* descriptor = nullptr;
    std::string version;
  };
  Plugin& load(const std::string& path);

  std::map<std::string, Plugin> plugins_;     // by path
  std::map<std::string, std::string> names_;  // plugin name -> path
};

// Loads every plugin of `config` and checks that each configured service
// exists in it and serves the entry's `kind:`; appends one line per problem
// ("FILE:LINE: services[i].plugin: ...", "FILE:LINE: services[i].kind: ...").
// Runs plugin code (static constructors): call it in a throwaway process
// where that matters.
void check_plugins(const Config& config, std::vector<std::string>* problems);

// Creates each service of `config` and runs its start() and then stop() on
// this thread, as a worker would; appends one line per service whose start()
// throws ("FILE:LINE: services[i]: start failed: ..."). Call it after
// check_plugins() found nothing, in a throwaway process.
void check_service_starts(const Config& config, std::vector<std::string>* problems);

}  // namespace sbus
