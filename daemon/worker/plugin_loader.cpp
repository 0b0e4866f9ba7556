#include "worker/plugin_loader.hpp"

#include <boost/dll/shared_library_load_mode.hpp>

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <system_error>

#include "base/error.hpp"
#include "base/log.hpp"
#include "config/sender_options.hpp"
#include "worker/plugin_image.hpp"

namespace sbus {

namespace {

// Why a descriptor of this ABI version cannot be used (a hand-written one:
// SBUS_PLUGIN makes none of these); empty when it can.
std::string descriptor_problem(const PluginDescriptor& d) {
  if (d.name == nullptr || d.name[0] == '\0') return "its descriptor has no plugin name";
  if (d.service_count == 0 || d.services == nullptr) return "its descriptor lists no services";
  for (std::size_t i = 0; i < d.service_count; ++i) {
    const ServiceFactory& service = d.services[i];
    if (service.name == nullptr || service.name[0] == '\0') {
      return "service #" + std::to_string(i + 1) + " of its descriptor has no name";
    }
    const std::string name = "service '" + std::string(service.name) + "'";
    if (service.create == nullptr) return name + " has no create function";
    const auto bits = static_cast<std::uint32_t>(service.kinds);
    if (bits == 0) return name + " serves no kind (neither calls, messages nor events)";
    if ((service.kinds & kAllKinds) != service.kinds) {
      char unknown[16];
      std::snprintf(unknown, sizeof unknown, "0x%x", bits & ~static_cast<std::uint32_t>(kAllKinds));
      return name + " declares kinds this sbusd does not know (" + unknown + "); it speaks ABI " +
             std::to_string(kAbiVersion) + " and knows rpc, message and event";
    }
  }
  return {};
}

// What SBUS_PLUGIN_VERSION says, on one line and at most kMaxVersion bytes;
// empty without it. Only the plugin's own symbol counts: dlsym on its handle
// also searches the libraries it links, which may be other plugins.
std::string stated_version(const boost::dll::shared_library& library) {
  constexpr std::size_t kMaxVersion = 128;
  if (!library.has(kPluginVersionSymbol)) return {};
  auto* function = library.get<const char*()>(kPluginVersionSymbol);
  Dl_info where{};
  void* own = dlsym(library.native(), kPluginSymbol);
  Dl_info own_where{};
  if (dladdr(reinterpret_cast<void*>(function), &where) == 0 || dladdr(own, &own_where) == 0 ||
      where.dli_fbase != own_where.dli_fbase) {
    return {};
  }
  const char* text = function();
  if (text == nullptr) return {};
  std::string version(text, strnlen(text, kMaxVersion));
  for (char& c : version) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return version;
}

}  // namespace

Kind sdk_kind(ServiceKind kind) {
  switch (kind) {
    case ServiceKind::kMessage: return Kind::kMessage;
    case ServiceKind::kEvent: return Kind::kEvent;
    case ServiceKind::kRpc: break;
  }
  return Kind::kCall;
}

std::string kinds_text(Kind kinds) {
  std::string text;
  if (serves(kinds, Kind::kCall)) text = "rpc";
  for (const auto& [kind, word] : {std::pair{Kind::kMessage, "message"}, std::pair{Kind::kEvent, "event"}}) {
    if (serves(kinds, kind)) text += (text.empty() ? "" : " and ") + std::string(word);
  }
  return text.empty() ? "nothing" : text;
}

PluginLoader::Plugin& PluginLoader::load(const std::string& path) {
  if (auto found = plugins_.find(path); found != plugins_.end()) return found->second;

  std::string from_file;
  std::shared_ptr<boost::dll::shared_library> library =
      load_plugin_image(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, &from_file);
  if (!from_file.empty()) {
    SBUS_LOG(kWarn) << "plugin " << path << ": loaded from the file itself, not a private copy (" << from_file
                    << "; its RUNPATH finds that library only through $ORIGIN): install a new version of it by "
                    << "writing a new file and renaming it over this one, never by writing over it";
  }
  if (!library->has(kPluginSymbol)) {
    throw PluginError("plugin " + path + ": no symbol " + kPluginSymbol +
                      " (not an sbus plugin? export services with SBUS_PLUGIN)");
  }
  const PluginDescriptor* descriptor = library->get<const PluginDescriptor*()>(kPluginSymbol)();
  if (descriptor == nullptr) throw PluginError("plugin " + path + ": descriptor is null");
  if (descriptor->abi_version != kAbiVersion) {
    throw PluginError("plugin " + path + ": built for sbus plugin ABI " + std::to_string(descriptor->abi_version) +
                      ", this sbusd speaks ABI " + std::to_string(kAbiVersion) + "; rebuild it against this SDK");
  }
  if (const std::string problem = descriptor_problem(*descriptor); !problem.empty()) {
    throw PluginError("plugin " + path + ": " + problem);
  }
  const std::string name = descriptor->name;
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
  if (library->has(kLogOutputSymbol)) {
    const LogContext& context = log_context();
    library->get<LogOutputFunction>(kLogOutputSymbol)(static_cast<int>(log_format()), context.node.c_str(),
                                                      context.broker.c_str(), static_cast<int>(context.worker_pid),
                                                      log_journal_writer());
  }
  std::string version = stated_version(*library);
  return plugins_[path] = Plugin{std::move(library), descriptor, std::move(version)};
}

const std::string& PluginLoader::version(const std::string& path) {
  return load(path).version;
}

const PluginDescriptor& PluginLoader::descriptor(const std::string& path) {
  return *load(path).descriptor;
}

const ServiceFactory& PluginLoader::find(const std::string& path, const std::string& export_name) {
  const PluginDescriptor& d = *load(path).descriptor;
  for (std::size_t i = 0; i < d.service_count; ++i) {
    if (export_name == d.services[i].name) return d.services[i];
  }
  std::string known;
  for (std::size_t i = 0; i < d.service_count; ++i) {
    known += (known.empty() ? "" : ", ") + std::string(d.services[i].name);
  }
  throw PluginError("plugin " + path + " (" + d.name + ") has no service '" + export_name + "' (it has: " + known +
                    ")");
}

LoadedService PluginLoader::create(const std::string& path, const std::string& export_name, Kind kind) {
  const ServiceFactory& factory = find(path, export_name);
  if (!serves(factory.kinds, kind)) {
    // Refused here too, not only by the check: a message acked into a
    // service that ignores messages would be lost without a trace.
    throw PluginError("plugin " + path + ": service '" + export_name + "' serves " + kinds_text(factory.kinds) +
                      " only, not kind: " + kinds_text(kind));
  }
  std::unique_ptr<Service> service(factory.create());
  if (!service) throw PluginError("plugin " + path + ": service " + export_name + " created null");
  const Plugin& plugin = plugins_.at(path);
  return LoadedService(plugin.library, std::move(service), plugin.version);
}

void check_plugins(const Config& config, std::vector<std::string>* problems) {
  PluginLoader loader;
  for (std::size_t i = 0; i < config.services.size(); ++i) {
    const ServiceConfig& service = config.services[i];
    const std::string where =
        config.path + ":" + std::to_string(service.line) + ": services[" + std::to_string(i) + "]";
    try {
      const ServiceFactory& factory = loader.find(service.plugin_path, service.export_name);
      const Kind wanted = sdk_kind(service.kind);
      if (!serves(factory.kinds, wanted)) {
        problems->push_back(where + ".kind: " + kinds_text(wanted) + ", but service '" + service.export_name +
                            "' of plugin " + service.plugin_path + " serves " + kinds_text(factory.kinds) +
                            " only (its SBUS_SERVICE says what it serves)");
      }
    } catch (const PluginError& e) {
      problems->push_back(where + ".plugin: " + e.what());
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
      LoadedService loaded = loader.create(service.plugin_path, service.export_name, sdk_kind(service.kind));
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
