// A plugin built for a future ABI (999). Only abi_version keeps its place
// across ABI versions, so the rest of the record is junk that the loader must
// never read: services points nowhere and service_count is absurd.
#include <sbus/plugin.hpp>

namespace {

const sbus::PluginDescriptor kDescriptor = {999, nullptr, nullptr, 1000000};

}  // namespace

extern "C" __attribute__((visibility("default"))) const sbus::PluginDescriptor* sbus_plugin_descriptor() {
  return &kDescriptor;
}
