// A plugin of this ABI whose service declares a kind this sbusd does not
// know (a bit a later SDK might give events): the loader must refuse it,
// naming the service, rather than guess what to send it.
#include <sbus/plugin.hpp>

namespace {

class FutureService : public sbus::Service {
 public:
  void on_call(const sbus::Request&, sbus::Response& response) override { response.send("never loaded"); }
};

sbus::Service* create_future() {
  return new FutureService();
}

const sbus::ServiceFactory kServices[] = {
    {"future", sbus::Kind::kCall | static_cast<sbus::Kind>(1u << 7), &create_future},
};
const sbus::PluginDescriptor kDescriptor = {sbus::kAbiVersion, "unknownkind", kServices, 1};

}  // namespace

extern "C" __attribute__((visibility("default"))) const sbus::PluginDescriptor* sbus_plugin_descriptor() {
  return &kDescriptor;
}
