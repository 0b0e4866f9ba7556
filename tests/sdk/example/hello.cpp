// An out-of-tree sbus plugin, built against the installed SDK.
//   hello.greet  answers "hello, NAME" for params ["NAME"] or {"name": "NAME"}
//   hello.ping   answers whether the node ["NODE"] answers PING, through
//                sbus::Sender: it makes the plugin link libsbus.so, so that
//                loading it shows that the installed library is found.
#include <sbus/plugin.hpp>
#include <sbus/sender.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace {

class GreetService : public sbus::Service {
 public:
  void on_call(const sbus::Request& request, sbus::Response& response) override {
    const rapidjson::Value& params = request.params();
    const rapidjson::Value* name = nullptr;
    if (params.IsArray() && params.Size() == 1) name = &params[0];
    if (params.IsObject() && params.HasMember("name")) name = &params["name"];
    if (name == nullptr || !name->IsString()) {
      response.error("invalid_params", R"(hello.greet takes ["NAME"] or {"name": "NAME"})");
      return;
    }
    response.send("hello, " + std::string(name->GetString(), name->GetStringLength()));
  }
};

class PingService : public sbus::Service {
 public:
  void start(const sbus::ServiceContext& context) override { context_ = &context; }

  void on_call(const sbus::Request& request, sbus::Response& response) override {
    const rapidjson::Value& params = request.params();
    if (!params.IsArray() || params.Size() != 1 || !params[0].IsString()) {
      response.error("invalid_params", R"(hello.ping takes ["NODE"])");
      return;
    }
    if (!sender_) sender_ = std::make_unique<sbus::Sender>(context_->sender());
    response.send(sender_->ping(params[0].GetString(), std::chrono::seconds(3)));
  }

 private:
  const sbus::ServiceContext* context_ = nullptr;  // valid until stop() returns
  std::unique_ptr<sbus::Sender> sender_;
};

}  // namespace

SBUS_PLUGIN("hello", SBUS_SERVICE("greet", GreetService, sbus::Kind::kCall),
            SBUS_SERVICE("ping", PingService, sbus::Kind::kCall))
