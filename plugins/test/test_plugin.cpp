// The test plugin: services to try sbus with and to test it.
//   test.echo    answers its params unchanged
//   test.sleep   sleeps the given seconds (a number, or [seconds]), answers them
//   test.fail    throws, to show that a failing service gets an error reply
//   test.record  (kind: message) appends its params as a JSON line to the
//                file named by the service's `options: {file: PATH}`
#include <sbus/plugin.hpp>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

class EchoService : public sbus::Service {
 public:
  void on_call(const sbus::Request& request, sbus::Response& response) override {
    response.send(request.params());
  }
};

class SleepService : public sbus::Service {
 public:
  void on_call(const sbus::Request& request, sbus::Response& response) override {
    const rapidjson::Value& params = request.params();
    const rapidjson::Value* seconds = &params;
    if (params.IsArray() && params.Size() == 1) seconds = &params[0];
    if (!seconds->IsNumber() || seconds->GetDouble() < 0 || seconds->GetDouble() > 3600) {
      response.error("invalid_params", "test.sleep takes a number of seconds (0 to 3600)");
      return;
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds->GetDouble()));
    response.send(*seconds);
  }
};

class FailService : public sbus::Service {
 public:
  void on_call(const sbus::Request&, sbus::Response&) override {
    throw std::runtime_error("test.fail always fails");
  }
};

class RecordService : public sbus::Service {
 public:
  void start(const sbus::ServiceContext& context) override {
    auto file = context.options.find("file");
    if (file == context.options.end() || file->second.empty()) {
      throw std::runtime_error("test.record needs options: {file: PATH}");
    }
    path_ = file->second;
  }

  void on_message(const sbus::Request& request) override {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    request.params().Accept(writer);
    std::FILE* out = std::fopen(path_.c_str(), "a");
    if (out == nullptr) throw std::runtime_error("cannot open " + path_);
    std::fprintf(out, "%s\n", buffer.GetString());
    std::fclose(out);
  }

 private:
  std::string path_;
};

}  // namespace

SBUS_PLUGIN("test",
            SBUS_SERVICE("echo", EchoService),
            SBUS_SERVICE("sleep", SleepService),
            SBUS_SERVICE("fail", FailService),
            SBUS_SERVICE("record", RecordService))
