// The sbus plugin SDK: everything a service author needs to write services
// that sbusd loads from a shared object.
//
// A plugin is a .so that defines one or more classes derived from
// sbus::Service and exports them once with SBUS_PLUGIN:
//
//   class AddService : public sbus::Service {
//    public:
//     void on_call(const sbus::Request& request, sbus::Response& response) override {
//       std::int64_t sum = 0;
//       for (const auto& v : request.params().GetArray()) sum += v.GetInt64();
//       response.send(sum);
//     }
//   };
//
//   SBUS_PLUGIN("math", SBUS_SERVICE("add", AddService))
//
// Threading: sbusd gives every configured service its own thread. on_call and
// on_message of one service object are never called concurrently; different
// services run in parallel. start() and stop() run on that same thread.
//
// Errors: an exception thrown from on_call becomes an error reply with code
// "service_failed" and the exception's what() in the message; one thrown from
// on_message is logged and the message retried (max_retries), then moved to
// the node's error queue. Neither stops the worker. A crash (segfault, abort)
// ends the worker process, which the supervisor restarts.
//
// Logging: sbus/log.hpp writes lines to sbusd's log, named after the service.
// docs/plugins.md is the guide to all of this.
//
// ABI: sbusd checks kAbiVersion of the plugin against its own before it
// touches anything else in the plugin, and refuses a mismatch. Any change to
// the layout of the types below or to Service's virtual methods bumps it.
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sbus/sender.hpp"

namespace sbus {

inline constexpr std::uint32_t kAbiVersion = 2;

// The error codes the SDK itself puts in a Response; sbusd's own are in
// docs/errors.md. A service may answer any other code of its own.
namespace errc {
// A call to a service that does not override on_call.
inline constexpr const char* kNotSupported = "not_supported";
// Response::error() given an empty code.
inline constexpr const char* kServiceError = "service_error";
}  // namespace errc

// One call or message as the service sees it. Owned by sbusd; valid for the
// duration of on_call / on_message only.
class Request {
 public:
  Request(std::string id, std::string node, std::string category, std::string service,
          rapidjson::Document params)
      : id_(std::move(id)),
        node_(std::move(node)),
        category_(std::move(category)),
        service_(std::move(service)),
        params_(std::move(params)) {}

  // The caller's event id: opaque, unique per caller process.
  const std::string& id() const { return id_; }
  // The node (queue) the call was addressed to.
  const std::string& node() const { return node_; }
  const std::string& category() const { return category_; }
  const std::string& service() const { return service_; }
  // The params as parsed JSON: any JSON value (py-servicebus senders send a
  // list or an object).
  const rapidjson::Value& params() const { return params_; }

 private:
  std::string id_;
  std::string node_;
  std::string category_;
  std::string service_;
  rapidjson::Document params_;
};

// The answer to an RPC. Call send() (a JSON result) or error() once; the last
// call wins. A service that returns without calling either answers `null`.
class Response {
 public:
  void send(const rapidjson::Value& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    value.Accept(writer);
    send_json(std::string(buffer.GetString(), buffer.GetSize()));
  }
  void send(std::int64_t value) { send_json(std::to_string(value)); }
  void send(int value) { send(static_cast<std::int64_t>(value)); }
  void send(double value) { send(rapidjson::Value(value)); }
  void send(bool value) { send_json(value ? "true" : "false"); }
  void send(std::string_view text) {
    rapidjson::Value v(rapidjson::StringRef(text.data(), text.size()));
    send(v);
  }
  void send(const char* text) { send(std::string_view(text)); }

  // Sends `json` as the result text unchanged. The caller vouches that it is
  // valid JSON.
  void send_json(std::string json) {
    body_ = std::move(json);
    error_code_.clear();
  }

  // An error reply: `code` is a short machine-readable word (e.g.
  // "invalid_params"), `message` the text a person reads.
  void error(std::string code, std::string message) {
    error_code_ = code.empty() ? errc::kServiceError : std::move(code);
    body_ = std::move(message);
  }

  bool is_error() const { return !error_code_.empty(); }
  const std::string& error_code() const { return error_code_; }
  // The JSON result text, or the error message when is_error().
  const std::string& body() const { return body_; }

 private:
  std::string body_ = "null";
  std::string error_code_;
};

// What sbusd tells a service when it starts: where it runs and the
// `options:` map of its entry in the YAML config.
struct ServiceContext {
  std::string node;
  std::string category;
  std::string service;
  std::map<std::string, std::string> options;
  // What a service needs to call others: sbus::Sender(context.sender). The
  // worker's broker first, then the others of the config; the config's
  // exchange, secret, `token` (how to sign) and `tls:` settings.
  SenderOptions sender;
};

// Base class of every service. Override on_call for an RPC service,
// on_message for a message service (kind: message in the YAML).
class Service {
 public:
  virtual ~Service() = default;

  // Called once on the service's thread before the first call; an exception
  // here fails the worker's start with the exception's text.
  virtual void start(const ServiceContext& /*context*/) {}
  // Called once on the service's thread after the last call.
  virtual void stop() {}

  virtual void on_call(const Request& request, Response& response) {
    response.error(errc::kNotSupported,
                   "service " + request.category() + "." + request.service() +
                       " does not answer calls");
  }
  virtual void on_message(const Request& /*request*/) {}
};

// --- The export record. Its layout is part of the ABI: abi_version must stay
// the first member so that any sbusd can read it.

struct ServiceFactory {
  const char* name;       // the SERVICE part; the YAML maps CATEGORY.SERVICE to it
  Service* (*create)();   // returns a new object owned by the caller
};

struct PluginDescriptor {
  std::uint32_t abi_version;
  const char* name;
  const ServiceFactory* services;
  std::size_t service_count;
};

// The exported symbol sbusd looks up in each plugin.
inline constexpr const char* kPluginSymbol = "sbus_plugin_descriptor";

namespace detail {
template <typename T>
Service* create_service() {
  return new T();
}
}  // namespace detail

}  // namespace sbus

#define SBUS_SERVICE(name, type) \
  ::sbus::ServiceFactory { name, &::sbus::detail::create_service<type> }

// Exports the plugin `plugin_name` with the services listed after it:
//   SBUS_PLUGIN("test", SBUS_SERVICE("echo", Echo), SBUS_SERVICE("sleep", Sleep))
#define SBUS_PLUGIN(plugin_name, ...)                                                 \
  namespace {                                                                         \
  const ::sbus::ServiceFactory sbus_plugin_services_[] = {__VA_ARGS__};               \
  const ::sbus::PluginDescriptor sbus_plugin_descriptor_ = {                          \
      ::sbus::kAbiVersion, plugin_name, sbus_plugin_services_,                        \
      sizeof(sbus_plugin_services_) / sizeof(sbus_plugin_services_[0])};              \
  }                                                                                   \
  extern "C" __attribute__((visibility("default"))) const ::sbus::PluginDescriptor*  \
  sbus_plugin_descriptor() {                                                          \
    return &sbus_plugin_descriptor_;                                                  \
  }
