// Must not compile (tests/CMakeLists.txt checks the compiler's message): a
// service exported as before plugin ABI 3, without the kinds it serves. The
// message tells the author what to write instead.
#include <sbus/plugin.hpp>

namespace {

class AddService : public sbus::Service {
 public:
  void on_call(const sbus::Request&, sbus::Response& response) override { response.send(1); }
};

}  // namespace

SBUS_PLUGIN("refused", SBUS_SERVICE("add", AddService))
