// A valid plugin whose library takes an hour to load (a static constructor
// that sleeps, as a plugin that waits for a resource at load time would):
// a config check that loads it hangs, and must be given up on.
#include <sbus/plugin.hpp>

#include <chrono>
#include <thread>

namespace {

struct SlowLoad {
  SlowLoad() { std::this_thread::sleep_for(std::chrono::hours(1)); }
};
const SlowLoad slow_load;

class NothingService : public sbus::Service {
 public:
  void on_call(const sbus::Request&, sbus::Response& response) override { response.send("never loaded"); }
};

}  // namespace

SBUS_PLUGIN("slowload", SBUS_SERVICE("nothing", NothingService, sbus::Kind::kCall))
