#include "worker/plugin_loader.hpp"

#include <boost/dll/shared_library_load_mode.hpp>

#include <dlfcn.h>

#include <filesystem>
#include <system_error>

#include "base/error.hpp"
#include "base/log.hpp"
#include "config/sender_options.hpp"

namespace sbus {

PluginLoader::Plugin& PluginLoader::load(const std::string& path) {
  if (auto found = plugins_.find(path); found != plugins_.end()) return found->second;

  if (!std::filesystem::exists(path)) throw PluginError("plugin " + path + ": no such file");
  auto library = std::make_shared<boost::dll::shared_library>();
  boost::dll::fs::error_code error;
  library->load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, error);
  if (error) {
    // dlerror() says more than the error code (a missing dependency, a
    // symbol the plugin needs).
    const char* detail = dlerror();
    throw PluginError("plugin " + path + ": cannot load: " + (detail ? detail : error.message()));
  }
  if (!library->has(kPluginSymbol)) {
    throw PluginError("plugin " + path + ": no symbol " + kPluginSymbol +
                      " (not an sbus plugin? export services with SBUS_PLUGIN)");
  }
  const PluginDescriptor* descriptor =
      library->get<const PluginDescriptor*()>(kPluginSymbol)();
  if (descriptor == nullptr) throw PluginError("plugin " + path + ": descriptor is null");
  if (descriptor->abi_version != kAbiVersion) {
    throw PluginError("plugin " + path + ": built for sbus plugin ABI " +
                      std::to_string(descriptor->abi_version) + ", this sbusd speaks ABI " +
                      std::to_string(kAbiVersion) + "; rebuild it against this SDK");
  }
  const std::string name = descriptor->name != nullptr ? descriptor->name : "";
  if (auto other = names_.find(name); other != names_.end() && other->second != path) {
    throw PluginError("plugin " + path + ": its name '" + name + "' is taken by " + other->second);
  }
  names_[name] = path;
  // A plugin that links libsbus.so logs through that library's copy of the
  // log (sbus/log.hpp): give it this process's tag and level. dlsym on the
  // plugin's handle searches its dependencies too.
  if (library->has(kLogConfigureSymbol)) {
    library->get<LogConfigureFunction>(kLogConfigureSymbol)(log_tag().c_str(), static_cast<int>(log_level()));
  }
  return plugins_[path] = Plugin{std::move(library), descriptor};
}

const PluginDescriptor& PluginLoader::descriptor(const std::string& path) {
  return *load(path).descriptor;
}

LoadedService PluginLoader::create(const std::string& path, const std::string& export_name) {
  Plugin& plugin = load(path);
  const PluginDescriptor& d = *plugin.descriptor;
  for (std::size_t i = 0; i < d.service_count; ++i) {
    if (d.services[i].name != nullptr && export_name == d.services[i].name) {
      std::unique_ptr<Service> service(d.services[i].create());
      if (!service) throw PluginError("plugin " + path + ": service " + export_name + " created null");
      return LoadedService(plugin.library, std::move(service));
    }
  }
  std::string known;
  for (std::size_t i = 0; i < d.service_count; ++i) {
    known += (known.empty() ? "" : ", ") + std::string(d.services[i].name);
  }
  throw PluginError("plugin " + path + " (" + d.name + ") has no service '" + export_name +
                    "' (it has: " + known + ")");
}

void check_plugins(const Config& config, std::vector<std::string>* problems) {
  PluginLoader loader;
  for (std::size_t i = 0; i < config.services.size(); ++i) {
    const ServiceConfig& service = config.services[i];
    try {
      const PluginDescriptor& d = loader.descriptor(service.plugin_path);
      bool found = false;
      for (std::size_t s = 0; s < d.service_count; ++s) {
        found = found || service.export_name == d.services[s].name;
      }
      if (!found) loader.create(service.plugin_path, service.export_name);  // throws the message
    } catch (const PluginError& e) {
      problems->push_back(config.path + ":" + std::to_string(service.line) + ": services[" +
                          std::to_string(i) + "].plugin: " + e.what());
    }
  }
}

void check_service_starts(const Config& config, std::vector<std::string>* problems) {
  PluginLoader loader;
  const SenderOptions sender = sender_options_of(config);
  for (std::size_t i = 0; i < config.services.size(); ++i) {
    const ServiceConfig& service = config.services[i];
    const std::string where =
        config.path + ":" + std::to_string(service.line) + ": services[" + std::to_string(i) + "]: ";
    try {
      LoadedService loaded = loader.create(service.plugin_path, service.export_name);
      const ServiceContext context{config.node, service.category, service.service, service.options, sender};
      loaded.service().start(context);
      loaded.service().stop();
    } catch (const std::exception& e) {
      problems->push_back(where + service.name + ": start failed: " + (e.what()[0] ? e.what() : "exception"));
    } catch (...) {
      problems->push_back(where + service.name + ": start failed: unknown exception");
    }
  }
}

}  // namespace sbus
