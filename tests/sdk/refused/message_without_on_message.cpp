// Must not compile (tests/CMakeLists.txt checks the compiler's message): a
// service that says it serves messages but does not override on_message,
// whose messages sbusd would otherwise take and drop.
#include <sbus/plugin.hpp>

namespace {

class AnswersOnly : public sbus::Service {
 public:
  void on_call(const sbus::Request&, sbus::Response& response) override { response.send(1); }
};

}  // namespace

SBUS_PLUGIN("refused", SBUS_SERVICE("answers", AnswersOnly, sbus::Kind::kCall | sbus::Kind::kMessage))
