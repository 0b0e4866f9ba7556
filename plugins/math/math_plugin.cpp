// The math plugin: math.add sums a list of numbers, as in the py-servicebus
// README.
#include <sbus/plugin.hpp>

#include <cstdint>
#include <limits>

namespace {

class AddService : public sbus::Service {
 public:
  void on_call(const sbus::Request& request, sbus::Response& response) override {
    const rapidjson::Value& params = request.params();
    if (!params.IsArray()) {
      response.error("invalid_params", "math.add takes a list of numbers, e.g. [1, 2]");
      return;
    }
    std::int64_t integer_sum = 0;
    double real_sum = 0;
    bool integral = true;
    for (const rapidjson::Value& item : params.GetArray()) {
      if (item.IsInt64()) {
        std::int64_t value = item.GetInt64();
        if (__builtin_add_overflow(integer_sum, value, &integer_sum)) integral = false;
        real_sum += static_cast<double>(value);
      } else if (item.IsNumber()) {
        integral = false;
        real_sum += item.GetDouble();
      } else {
        response.error("invalid_params", "math.add: every item must be a number");
        return;
      }
    }
    if (integral) {
      response.send(integer_sum);
    } else {
      response.send(real_sum);
    }
  }
};

}  // namespace

SBUS_PLUGIN("math", SBUS_SERVICE("add", AddService, sbus::Kind::kCall))
