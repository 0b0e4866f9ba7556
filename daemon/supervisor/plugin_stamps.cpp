#include "supervisor/plugin_stamps.hpp"

#include <algorithm>
#include <fstream>
#include <functional>
#include <iterator>
#include <string_view>

namespace sbus {

namespace {

bool stamp_file(const std::string& path, PluginStamp* stamp) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return false;
  stamp->size = static_cast<off_t>(bytes.size());
  stamp->content = std::hash<std::string_view>{}(bytes);
  return true;
}

}  // namespace

PluginStamps stamp_plugins(const Config& config) {
  PluginStamps stamps;
  for (const ServiceConfig& service : config.services) {
    if (stamps.count(service.plugin_path) > 0) continue;
    if (PluginStamp stamp; stamp_file(service.plugin_path, &stamp)) stamps[service.plugin_path] = stamp;
  }
  return stamps;
}

std::vector<std::string> changed_plugins(const PluginStamps& before, const PluginStamps& after) {
  std::vector<std::string> changed;
  for (const auto& [path, stamp] : before) {
    const auto now = after.find(path);
    if (now == after.end() || !(now->second == stamp)) changed.push_back(path);
  }
  for (const auto& [path, stamp] : after) {
    if (before.count(path) == 0) changed.push_back(path);
  }
  std::sort(changed.begin(), changed.end());
  return changed;
}

}  // namespace sbus
