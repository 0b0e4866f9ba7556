// docs/examples/adder_plugin.cpp
#include <sbus/plugin.hpp>

class AddService : public sbus::Service {
 public:
  void on_call(const sbus::Request& request, sbus::Response& response) override {
    if (!request.params().IsArray()) {
      response.error("invalid_params", "adder.add takes a list of integers");
      return;
    }
    std::int64_t sum = 0;
    for (const auto& value : request.params().GetArray()) {
      if (!value.IsInt64()) {
        response.error("invalid_params", "adder.add takes a list of integers");
        return;
      }
      sum += value.GetInt64();
    }
    response.send(sum);
  }
};

SBUS_PLUGIN("adder", SBUS_SERVICE("add", AddService, sbus::Kind::kCall))
