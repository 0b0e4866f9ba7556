#include "worker/plugin_loader.hpp"

#include <boost/dll/shared_library_load_mode.hpp>

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "base/error.hpp"
#include "base/log.hpp"
#include "config/sender_options.hpp"
#include "worker/plugin_host.hpp"

namespace sbus {

namespace {

// The sizes of the structs as of each minor version of ABI 5 (index: the
// minor): a plugin that says it speaks 5.N has structs at least this big.
// A minor version that adds a member adds a row.
struct AbiSizes {
  std::uint32_t plugin;
  std::uint32_t service;
};
constexpr AbiSizes kAbiSizes[] = {
    {static_cast<std::uint32_t>(offsetof(sbus_plugin, service_count) + sizeof(std::size_t)),
     static_cast<std::uint32_t>(offsetof(sbus_service_def, destroy) + sizeof(void (*)(void*)))},
};
static_assert(sizeof(kAbiSizes) / sizeof(kAbiSizes[0]) == SBUS_ABI_MINOR + 1, "one row per minor version");

// Why the version and sizes of a descriptor cannot be read on; empty when
// they can. Reads only the four words every ABI 5 descriptor starts with.
std::string version_problem(const sbus_plugin& d) {
  const std::string ours = std::to_string(SBUS_ABI_MAJOR) + "." + std::to_string(SBUS_ABI_MINOR);
  if (d.abi_major > SBUS_ABI_MAJOR) {
    return "built for sbus plugin ABI " + std::to_string(d.abi_major) + ", newer than this sbusd's ABI " +
           std::to_string(SBUS_ABI_MAJOR) + " (it speaks ABI " + std::to_string(SBUS_ABI_MAJOR) +
           "); upgrade sbusd or build the plugin against this SDK";
  }
  if (d.abi_major != SBUS_ABI_MAJOR) {
    return "built for sbus plugin ABI " + std::to_string(d.abi_major) + ", this sbusd speaks ABI " +
           std::to_string(SBUS_ABI_MAJOR) + "; rebuild it against this SDK";
  }
  const std::string theirs = std::to_string(d.abi_major) + "." + std::to_string(d.abi_minor);
  if (d.abi_minor > SBUS_ABI_MINOR) {
    return "built for sbus plugin ABI " + theirs + ", newer than this sbusd's ABI " + ours +
           "; upgrade sbusd or build the plugin against this SDK";
  }
  const AbiSizes& sizes = kAbiSizes[d.abi_minor];
  if (d.struct_size < sizes.plugin) {
    return "its descriptor is " + std::to_string(d.struct_size) + " bytes, smaller than ABI " + theirs + " implies (" +
           std::to_string(sizes.plugin) + ")";
  }
  if (d.service_struct_size < sizes.service) {
    return "its service records are " + std::to_string(d.service_struct_size) + " bytes, smaller than ABI " + theirs +
           " implies (" + std::to_string(sizes.service) + ")";
  }
  return {};
}

// Why one service record cannot be used; empty when it can.
std::string service_problem(const sbus_service_def& service, std::size_t index) {
  if (service.name == nullptr || service.name[0] == '\0') {
    return "service #" + std::to_string(index + 1) + " of its descriptor has no name";
  }
  const std::string name = "service '" + std::string(service.name) + "'";
  if (service.create == nullptr) return name + " has no create function";
  if (service.destroy == nullptr) return name + " has no destroy function";
  const std::uint32_t bits = service.kinds;
  if (bits == 0) return name + " serves no kind (neither calls, messages nor events)";
  const std::uint32_t known = SBUS_KIND_CALL | SBUS_KIND_MESSAGE | SBUS_KIND_EVENT;
  if ((bits & ~known) != 0) {
    char unknown[16];
    std::snprintf(unknown, sizeof unknown, "0x%x", bits & ~known);
    return name + " declares kinds this sbusd does not know (" + unknown + "); it speaks ABI " +
           std::to_string(SBUS_ABI_MAJOR) + "." + std::to_string(SBUS_ABI_MINOR) + " and knows rpc, message and event";
  }
  if ((bits & SBUS_KIND_CALL) != 0 && service.on_call == nullptr) return name + " serves rpc but has no on_call";
  if ((bits & SBUS_KIND_MESSAGE) != 0 && service.on_message == nullptr) {
    return name + " serves message but has no on_message";
  }
  if ((bits & SBUS_KIND_EVENT) != 0 && service.on_event == nullptr) return name + " serves event but has no on_event";
  return {};
}

// Why a descriptor of this ABI cannot be used; empty when it can.
std::string descriptor_problem(const sbus_plugin& d) {
  if (std::string problem = version_problem(d); !problem.empty()) return problem;
  if (d.name == nullptr || d.name[0] == '\0') return "its descriptor has no plugin name";
  if (d.service_count == 0 || d.services == nullptr) return "its descriptor lists no services";
  for (std::size_t i = 0; i < d.service_count; ++i) {
    if (std::string problem = service_problem(service_def(d, i), i); !problem.empty()) return problem;
  }
  return {};
}

}  // namespace

sbus_service_def service_def(const sbus_plugin& plugin, std::size_t index) {
  sbus_service_def def{};
  const auto* base = reinterpret_cast<const unsigned char*>(plugin.services);
  std::memcpy(&def, base + index * plugin.service_struct_size,
              std::min<std::size_t>(plugin.service_struct_size, sizeof def));
  return def;
}

LoadedService& LoadedService::operator=(LoadedService&& other) noexcept {
  if (this != &other) {
    destroy();
    def_ = other.def_;
    self_ = std::exchange(other.self_, nullptr);
    library_ = std::move(other.library_);
  }
  return *this;
}

LoadedService::~LoadedService() {
  destroy();
}

void LoadedService::destroy() {
  if (self_ != nullptr) def_.destroy(std::exchange(self_, nullptr));
}

std::optional<std::string> LoadedService::start(const sbus_context* context) {
  if (def_.start == nullptr) return std::nullopt;
  RequestScope scope(nullptr);
  if (def_.start(self_, context) == 0) return std::nullopt;
  return scope.failure("exception");
}

std::optional<std::string> LoadedService::stop() {
  if (def_.stop == nullptr) return std::nullopt;
  RequestScope scope(nullptr);
  if (def_.stop(self_) == 0) return std::nullopt;
  return scope.failure("stop failed");
}

std::optional<std::string> LoadedService::call(sbus_request& request) {
  RequestScope scope(&request);
  if (def_.on_call(self_, &request) != 0) return scope.failure("unknown exception");
  if (!request.replied) return std::string("returned without a reply");
  return std::nullopt;
}

std::optional<std::string> LoadedService::deliver(sbus_request& request, bool event) {
  RequestScope scope(&request);
  int (*entry)(void*, sbus_request*) = event ? def_.on_event : def_.on_message;
  if (entry == nullptr) {
    return std::string("service ") + std::string(request.category) + "." + std::string(request.service) +
           (event ? " does not take events" : " does not take messages");
  }
  if (entry(self_, &request) == 0) return std::nullopt;
  return scope.failure("unknown exception");
}

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
  if (!library->has(SBUS_PLUGIN_SYMBOL)) {
    throw PluginError("plugin " + path + ": no symbol " + SBUS_PLUGIN_SYMBOL +
                      " (not an sbus plugin? export services with SBUS_PLUGIN, or sbus_plugin_descriptor() in C)");
  }
  const sbus_plugin* descriptor = library->get<const sbus_plugin*()>(SBUS_PLUGIN_SYMBOL)();
  if (descriptor == nullptr) throw PluginError("plugin " + path + ": descriptor is null");
  if (const std::string problem = descriptor_problem(*descriptor); !problem.empty()) {
    throw PluginError("plugin " + path + ": " + problem);
  }
  const std::string name = descriptor->name;
  if (auto other = names_.find(name); other != names_.end() && other->second != path) {
    throw PluginError("plugin " + path + ": its name '" + name + "' is taken by " + other->second);
  }
  names_[name] = path;
  // A plugin that links libsbus.so logs its sender's lines through that
  // library's copy of the log: give it this process's tag and level.
  // dlsym on the plugin's handle searches its dependencies too.
  if (library->has(kLogConfigureSymbol)) {
    library->get<LogConfigureFunction>(kLogConfigureSymbol)(log_tag().c_str(), static_cast<int>(log_level()));
  }
  if (library->has(kLogOutputSymbol)) {
    const LogContext& context = log_context();
    library->get<LogOutputFunction>(kLogOutputSymbol)(static_cast<int>(log_format()), context.node.c_str(),
                                                      context.broker.c_str(), static_cast<int>(context.worker_pid),
                                                      log_journal_writer());
  }
  return plugins_[path] = Plugin{std::move(library), descriptor};
}

const sbus_plugin& PluginLoader::descriptor(const std::string& path) {
  return *load(path).descriptor;
}

sbus_service_def PluginLoader::find(const std::string& path, const std::string& export_name) {
  const sbus_plugin& d = *load(path).descriptor;
  for (std::size_t i = 0; i < d.service_count; ++i) {
    const sbus_service_def def = service_def(d, i);
    if (export_name == def.name) return def;
  }
  std::string known;
  for (std::size_t i = 0; i < d.service_count; ++i) {
    known += (known.empty() ? "" : ", ") + std::string(service_def(d, i).name);
  }
  throw PluginError("plugin " + path + " (" + d.name + ") has no service '" + export_name + "' (it has: " + known +
                    ")");
}

LoadedService PluginLoader::create(const std::string& path, const std::string& export_name, Kind kind) {
  const sbus_service_def def = find(path, export_name);
  const auto kinds = static_cast<Kind>(def.kinds);
  if (!serves(kinds, kind)) {
    // Refused here too, not only by the check: a message acked into a
    // service that ignores messages would be lost without a trace.
    throw PluginError("plugin " + path + ": service '" + export_name + "' serves " + kinds_text(kinds) +
                      " only, not kind: " + kinds_text(kind));
  }
  void* self = def.create(plugin_host());
  if (self == nullptr) throw PluginError("plugin " + path + ": service " + export_name + " created null");
  return LoadedService(plugins_.at(path).library, def, self);
}

void check_plugins(const Config& config, std::vector<std::string>* problems) {
  PluginLoader loader;
  for (std::size_t i = 0; i < config.services.size(); ++i) {
    const ServiceConfig& service = config.services[i];
    const std::string where =
        config.path + ":" + std::to_string(service.line) + ": services[" + std::to_string(i) + "]";
    try {
      const sbus_service_def def = loader.find(service.plugin_path, service.export_name);
      const Kind wanted = sdk_kind(service.kind);
      const auto kinds = static_cast<Kind>(def.kinds);
      if (!serves(kinds, wanted)) {
        problems->push_back(where + ".kind: " + kinds_text(wanted) + ", but service '" + service.export_name +
                            "' of plugin " + service.plugin_path + " serves " + kinds_text(kinds) +
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
      const HostContext context{config.node, service.category, service.service, service.options, sender};
      LoadedService loaded = loader.create(service.plugin_path, service.export_name, sdk_kind(service.kind));
      if (const auto failure = loaded.start(context.get())) {
        problems->push_back(where + service.name + ": start failed: " + *failure);
        continue;
      }
      loaded.stop();
    } catch (const std::exception& e) {
      problems->push_back(where + service.name + ": start failed: " + (e.what()[0] ? e.what() : "exception"));
    }
  }
}

}  // namespace sbus
