// Loads services from plugin shared objects with Boost.DLL, through the C
// ABI of sbus/plugin.h only.
//
// A plugin exports one sbus_plugin descriptor. The loader reads its major
// ABI version before anything else and refuses another one; it never calls
// into such a plugin. It also refuses a descriptor it cannot use, naming
// the reason: null or empty names, no services, kinds this sbusd does not
// know, a minor version newer than its own, a struct smaller than its
// version implies, an entry point missing for a kind the service serves;
// and a service configured for a kind it does not serve.
#pragma once

#include <boost/dll/shared_library.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sbus/plugin.h>
#include <sbus/plugin.hpp>

#include "config/config.hpp"

namespace sbus {

// One service object (the state its create() made) together with the
// library that holds its code. The object is destroyed (destroy()) before
// the library is unloaded. Each entry point runs in a RequestScope on the
// calling thread; a failure comes back as its text (set_failure()'s, or a
// default), nullopt when it went well.
class LoadedService {
 public:
  LoadedService(std::shared_ptr<boost::dll::shared_library> library, const sbus_service_def& def, void* self)
      : library_(std::move(library)), def_(def), self_(self) {}
  LoadedService(LoadedService&& other) noexcept
      : library_(std::move(other.library_)), def_(other.def_), self_(std::exchange(other.self_, nullptr)) {}
  LoadedService& operator=(LoadedService&& other) noexcept;
  ~LoadedService();

  std::optional<std::string> start(const sbus_context* context);
  std::optional<std::string> stop();
  // A call: the plugin's answer is in `request` (replied, error_code, body).
  std::optional<std::string> call(sbus_request& request);
  // A message, or an event with `event`.
  std::optional<std::string> deliver(sbus_request& request, bool event);

 private:
  void destroy();

  // Declared first: destroyed last.
  std::shared_ptr<boost::dll::shared_library> library_;
  sbus_service_def def_;  // the fields this sbusd knows, copied
  void* self_;
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
  const sbus_plugin& descriptor(const std::string& path);

  // The service `export_name` of `path`, loading it if needed, with the
  // fields this sbusd knows. Throws PluginError listing the services the
  // plugin has.
  sbus_service_def find(const std::string& path, const std::string& export_name);

 private:
  struct Plugin {
    std::shared_ptr<boost::dll::shared_library> library;
    const sbus_plugin* descriptor = nullptr;
  };
  Plugin& load(const std::string& path);

  std::map<std::string, Plugin> plugins_;     // by path
  std::map<std::string, std::string> names_;  // plugin name -> path
};

// The index-th service of a descriptor that passed the loader's checks,
// stepping by its service_struct_size; the fields past it zero.
sbus_service_def service_def(const sbus_plugin& plugin, std::size_t index);

// Loads every plugin of `config` and checks that each configured service
// exists in it and serves the entry's `kind:`; appends one line per problem
// ("FILE:LINE: services[i].plugin: ...", "FILE:LINE: services[i].kind: ...").
// Runs plugin code (static constructors): call it in a throwaway process
// where that matters.
void check_plugins(const Config& config, std::vector<std::string>* problems);

// Creates each service of `config` and runs its start() and then stop() on
// this thread, as a worker would; appends one line per service whose start()
// fails ("FILE:LINE: services[i]: start failed: ..."). Call it after
// check_plugins() found nothing, in a throwaway process.
void check_service_starts(const Config& config, std::vector<std::string>* problems);

}  // namespace sbus
