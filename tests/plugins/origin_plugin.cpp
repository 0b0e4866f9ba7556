// A plugin that needs liborigin_dep.so, found only through $ORIGIN (see
// origin_dep.cpp): echo.answer returns what that library says.
#include <sbus/plugin.hpp>

extern "C" const char* sbus_test_origin_answer();

namespace {

class AnswerService : public sbus::Service {
 public:
  void on_call(const sbus::Request& /*request*/, sbus::Response& response) override {
    response.send(sbus_test_origin_answer());
  }
};

}  // namespace

SBUS_PLUGIN("origin", SBUS_SERVICE("answer", AnswerService, sbus::Kind::kCall))
