// A valid plugin that calls itself "math", as plugins/math does: the loader
// must refuse to load both into one process.
#include <sbus/plugin.hpp>

namespace {

class OtherAddService : public sbus::Service {
 public:
  void on_call(const sbus::Request&, sbus::Response& response) override { response.send("the other math.add"); }
};

}  // namespace

SBUS_PLUGIN("math", SBUS_SERVICE("add", OtherAddService, sbus::Kind::kCall))
