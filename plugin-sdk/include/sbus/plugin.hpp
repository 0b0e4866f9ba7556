// The sbus plugin SDK: everything a service author needs to write services
// that sbusd loads from a shared object.
//
// A plugin is a .so that defines one or more classes derived from
// sbus::Service and exports them once with SBUS_PLUGIN, each with the kinds
// of delivery it serves:
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
//   SBUS_PLUGIN("math", SBUS_SERVICE("add", AddService, sbus::Kind::kCall))
//
// Kinds: a service serves calls (on_call; `kind: rpc` in sbusd's YAML),
// messages (on_message; `kind: message`), events (on_event; `kind: event`)
// or several. `sbusd --check`, a reload
// and a worker's start refuse a config entry whose `kind:` its service does
// not serve, so that no message is acked into a service that ignores it.
//
// Threading: sbusd gives every configured service its own thread. on_call and
// on_message (and on_event) of one service object are never called concurrently; different
// services run in parallel. start() and stop() run on that same thread.
//
// Errors: what sbusd does with an exception thrown from each method is said
// at the method, in Service below. None stops the worker. A crash (segfault,
// abort) ends the worker process, which the supervisor restarts.
//
// Logging: sbus/log.hpp writes lines to sbusd's log, named after the service.
// docs/plugins.md is the guide to all of this.
//
// ABI: this header is a layer over the C ABI of sbus/plugin.h, compiled
// into the plugin: no type of the C++ standard library crosses into sbusd,
// so a plugin needs no particular compiler or standard library, and a
// plugin built against ABI 5.N keeps loading in later sbusd versions that
// speak 5 (docs/plugins.md, "Compatibility").
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "sbus/export.hpp"
#include "sbus/log.hpp"
#include "sbus/plugin.h"
#include "sbus/sender.hpp"

namespace sbus {

// 3: each service declares its kinds (ServiceFactory::kinds), and
//    ServiceContext gives the sender through sender() and sender_options().
// 4: Request::caller() (who sent the call; a member of Request); events:
//    Kind::kEvent, Service::on_event and Request::topic(); SenderOptions
//    and SendOptions for deferred delivery.
// 5: the C ABI of sbus/plugin.h, with this header as a layer over it;
//    Request::message_id().
inline constexpr std::uint32_t kAbiVersion = SBUS_ABI_MAJOR;

// The kinds of delivery a service serves, as bits of a set: combine them
// with |, as in sbus::Kind::kCall | sbus::Kind::kMessage. The values are part
// of the ABI; a new kind takes a new bit.
enum class Kind : std::uint32_t {
  kCall = SBUS_KIND_CALL,        // RPCs, to on_call: `kind: rpc` in sbusd's YAML
  kMessage = SBUS_KIND_MESSAGE,  // fire-and-forget messages, to on_message: `kind: message`
  kEvent = SBUS_KIND_EVENT,      // published events of the YAML's `topics`, to on_event: `kind: event`
};

// Every kind this SDK knows: a set with other bits is from a newer SDK.
inline constexpr Kind kAllKinds = static_cast<Kind>(SBUS_KIND_CALL | SBUS_KIND_MESSAGE | SBUS_KIND_EVENT);

constexpr Kind operator|(Kind a, Kind b) {
  return static_cast<Kind>(static_cast<std::uint32_t>(a) | static_cast<std::uint32_t>(b));
}
constexpr Kind operator&(Kind a, Kind b) {
  return static_cast<Kind>(static_cast<std::uint32_t>(a) & static_cast<std::uint32_t>(b));
}
// Whether the set `kinds` holds every kind of `wanted` (and wanted is not empty).
constexpr bool serves(Kind kinds, Kind wanted) {
  return static_cast<std::uint32_t>(wanted) != 0 && (kinds & wanted) == wanted;
}

// The error codes the SDK itself puts in a Response; sbusd's own are in
// docs/errors.md. A service may answer any other code of its own.
namespace errc {
// A call to a service that does not override on_call.
inline constexpr const char* kNotSupported = "not_supported";
// Response::error() given an empty code.
inline constexpr const char* kServiceError = "service_error";
}  // namespace errc

// One call, message or event as the service sees it. Owned by sbusd; valid for the
// duration of on_call / on_message only.
class Request {
 public:
  Request(std::string id, std::string node, std::string category, std::string service, rapidjson::Document params)
      : Request(std::move(id), std::move(node), std::move(category), std::move(service)) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    params.Accept(writer);
    params_->own(std::string_view(buffer.GetString(), buffer.GetSize()));
    params_->document = std::move(params);
    params_->parsed.store(true, std::memory_order_relaxed);
  }
  // The same with the params as JSON text, copied: parsed on first use of
  // params(), in place, in a copy the Request keeps (its strings point into
  // it), which reads a long string about three times faster than a parse
  // that copies it out.
  Request(std::string id, std::string node, std::string category, std::string service, std::string_view params_json)
      : Request(std::move(id), std::move(node), std::move(category), std::move(service)) {
    params_->own(params_json);
  }
  // The params' text as sbusd hands it over, valid as long as the Request:
  // not copied, and not parsed unless params() is asked for.
  struct Borrowed {
    std::string_view json;
  };
  Request(std::string id, std::string node, std::string category, std::string service, Borrowed params_json)
      : Request(std::move(id), std::move(node), std::move(category), std::move(service)) {
    params_->json = params_json.json;
  }

  // The caller's event id: opaque, unique per caller process.
  const std::string& id() const { return id_; }
  // The node (queue) the call was addressed to.
  const std::string& node() const { return node_; }
  const std::string& category() const { return category_; }
  const std::string& service() const { return service_; }
  // The params as parsed JSON: any JSON value (py-servicebus senders send a
  // list or an object).
  // Parsed on first use (thread-safe). Not std::call_once: glibc's
  // pthread_once makes a futex system call each time it completes, one per
  // call served; a mutex not contended makes none.
  const rapidjson::Value& params() const {
    static const rapidjson::Value kNull;
    if (!params_) return kNull;  // moved from
    if (!params_->parsed.load(std::memory_order_acquire)) {
      std::lock_guard<std::mutex> lock(params_->parsing);
      if (!params_->parsed.load(std::memory_order_relaxed)) {
        params_->parse();
        params_->parsed.store(true, std::memory_order_release);
      }
    }
    return params_->document;
  }
  // The params as JSON text, byte for byte as the caller sent them (its
  // whitespace and escapes), checked by sbusd to be one JSON value. A
  // service that passes its params on or answers them unchanged answers
  // this (Response::send_json) without a parse or a re-writing.
  std::string_view params_json() const { return params_ ? params_->json : std::string_view(); }

  // When the caller stops waiting (its timeout, carried by the call), or
  // nullopt for a caller that sent none (py-servicebus) and a message
  // without one. A call is never started past it: sbusd answers it
  // `deadline_exceeded` instead.
  const std::optional<std::chrono::system_clock::time_point>& deadline() const { return deadline_; }
  // The time left until the deadline (zero once it has passed), or nullopt
  // without a deadline.
  std::optional<std::chrono::milliseconds> time_left() const {
    if (!deadline_) return std::nullopt;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(*deadline_ - std::chrono::system_clock::now());
    return left.count() > 0 ? left : std::chrono::milliseconds(0);
  }
  // True once the caller has given up (the deadline passed): a long service
  // should poll it and stop early; whatever it answers then is dropped.
  bool given_up() const { return deadline_ && std::chrono::system_clock::now() >= *deadline_; }

  // Set by sbusd before the service sees the request.
  void set_deadline(std::optional<std::chrono::system_clock::time_point> deadline) { deadline_ = deadline; }

  // Who sent (docs/security.md#callers) the call or
  // message, as its token proved it: a caller id of the node's `callers`,
  // or "py-servicebus" for anyone signing with the shared secret (compat,
  // hmac-sha256, hmac-sha256-v2 without a caller). Empty only for a Request
  // not made by sbusd (a plugin's own tests).
  const std::string& caller() const { return caller_; }
  // Set by sbusd before the service sees the request.
  void set_caller(std::string caller) { caller_ = std::move(caller); }
  // An event's topic, as it was published (`orders.created`); empty for a
  // call or a message. category() and service() are then the subscribing
  // service's own.
  const std::string& topic() const { return topic_; }
  // Set by sbusd before the service sees an event.
  void set_topic(std::string topic) { topic_ = std::move(topic); }
  // The message id the sender gave the call, message or event (the AMQP
  // property message_id; docs/reliability.md#handled-once): unique per
  // message, or the caller's own idempotency key (`sbus send --id KEY`).
  // sbusd runs a handler at most once per id and service (within the
  // node's retention), so a service whose side effects leave sbus (a
  // database, a payment) can key them on it too. Empty when the sender set
  // none (py-servicebus). Valid while the Request lives.
  std::string_view message_id() const { return message_id_; }
  // Set by sbusd before the service sees the request.
  void set_message_id(std::string message_id) { message_id_ = std::move(message_id); }

 private:
  std::string id_;
  std::string node_;
  std::string category_;
  std::string service_;
  Request(std::string id, std::string node, std::string category, std::string service)
      : id_(std::move(id)),
        node_(std::move(node)),
        category_(std::move(category)),
        service_(std::move(service)),
        params_(std::make_unique<Params>()) {}

  // The params' text and their document, made on first use; a heap block of
  // its own, which moving the Request does not move (the document's strings
  // point into `parsed_text`, `json` may point into `owned`).
  struct Params {
    std::string_view json;
    std::unique_ptr<char[]> owned;
    std::atomic<bool> parsed{false};
    std::mutex parsing;
    std::unique_ptr<char[]> parsed_text;
    rapidjson::Document document;

    void own(std::string_view text) {
      owned.reset(new char[text.size() + 1]);
      if (!text.empty()) std::memcpy(owned.get(), text.data(), text.size());
      owned[text.size()] = '\0';
      json = std::string_view(owned.get(), text.size());
    }
    void parse() {
      parsed_text.reset(new char[json.size() + 1]);
      if (!json.empty()) std::memcpy(parsed_text.get(), json.data(), json.size());
      parsed_text[json.size()] = '\0';
      document.ParseInsitu(parsed_text.get());
    }
  };
  std::unique_ptr<Params> params_;
  std::optional<std::chrono::system_clock::time_point> deadline_;
  std::string caller_;
  std::string topic_;
  std::string message_id_;
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

// What sbusd tells a service when it starts: where it runs, the `options:`
// map of its entry in the YAML config, and a way to call other services.
// sbusd keeps the object start() receives valid until stop() has returned.
// It lives in the plugin (this SDK copies it from sbusd's C context), so its
// layout is the plugin's own business.
struct ServiceContext {
  ServiceContext() = default;
  // A plugin's own tests make one; `sender` is what sender() and
  // sender_options() give.
  ServiceContext(std::string node_name, std::string category_name, std::string service_name,
                 std::map<std::string, std::string> service_options, SenderOptions sender)
      : node(std::move(node_name)),
        category(std::move(category_name)),
        service(std::move(service_name)),
        options(std::move(service_options)),
        sender_(std::make_shared<const SenderOptions>(std::move(sender))) {}

  std::string node;
  std::string category;
  std::string service;
  std::map<std::string, std::string> options;

  // A new Sender to call other services, as this node: the worker's broker
  // first, then the others of the config; the config's exchange, secret,
  // `token` (how to sign) and `tls:` settings. It connects on its first
  // call. Made in libsbus.so from the settings sbusd passes as JSON, so a
  // plugin keeps working when those settings grow. Not thread-safe (see
  // Sender): one per thread.
  Sender sender() const { return Sender(sender_options()); }

  // A copy of those settings, for a service that changes some of them (retry,
  // connect_timeout, smart_route) before it makes a Sender of its own.
  SenderOptions sender_options() const { return sender_ ? *sender_ : SenderOptions{}; }

  // sbusd's side of the context, for sbus/log.hpp and the C ABI: both null
  // in a context a plugin's test made.
  const sbus_host* host() const { return host_; }
  const sbus_context* handle() const { return handle_; }

  // Made by the SDK from sbusd's context when a service starts.
  static ServiceContext from_host(const sbus_host* host, const sbus_context* handle);

 private:
  // Shared by copies. Null in a default-made context: no brokers.
  std::shared_ptr<const SenderOptions> sender_;
  const sbus_host* host_ = nullptr;
  const sbus_context* handle_ = nullptr;
};

// Base class of every service. Override on_call for a service that serves
// Kind::kCall, on_message for Kind::kMessage, on_event for Kind::kEvent
// (SBUS_SERVICE checks it).
//
// What sbusd does when one of these methods throws:
// - start(): the service is unavailable until the worker restarts or the
//   config is reloaded: calls to it are answered `service_unavailable`,
//   messages to it go to the node's error queue; the other services serve.
//   `sbusd --check --start` runs start() and stop() to find this early.
// - on_call(): the caller gets the error reply `service_failed` with
//   "service CATEGORY.SERVICE failed: " and the exception's what(); the
//   worker logs it and the service takes the next call.
// - on_message(): the message is run again on the same thread after a
//   back-off (100 ms, doubling, at most 5 s), up to `max_retries` more times
//   (default 5); each failure is logged. When the last attempt throws, the
//   message goes to the node's error queue (`error_queue`, default
//   NODE.error) with the last what() in its header x-sbus-error. The
//   message is acked only once on_message returned or it is in the error
//   queue (a worker that stops meanwhile leaves it to the broker, which
//   delivers it again): it is never lost, and may run more than once.
// - on_event(): as on_message: retried, then the node's error queue.
// - stop(): logged, nothing else.
class Service {
 public:
  virtual ~Service() = default;

  // Called once on the service's thread before the first call.
  virtual void start(const ServiceContext& /*context*/) {}
  // Called once on the service's thread after the last call.
  virtual void stop() {}

  virtual void on_call(const Request& request, Response& response) {
    response.error(errc::kNotSupported,
                   "service " + request.category() + "." + request.service() + " does not answer calls");
  }
  // Reached only by a service that declares Kind::kMessage without
  // overriding this, through a descriptor not made with SBUS_SERVICE: the
  // message goes the way of a failed one, to the error queue, rather than
  // being acked unseen.
  virtual void on_message(const Request& request) {
    throw std::logic_error("service " + request.category() + "." + request.service() + " does not take messages");
  }
  // An event of one of the service's topics (request.topic()), with the
  // publisher's params. As on_message: acked once it returns; when it
  // throws, retried, then moved to the error queue. An event may run more
  // than once (after a crash), never concurrently with another of this
  // service. Reached without an override only as on_message is.
  virtual void on_event(const Request& request) {
    throw std::logic_error("service " + request.category() + "." + request.service() + " does not take events");
  }
};

}  // namespace sbus

// After the types it maps onto the C ABI.
#include "sbus/detail/plugin_abi.hpp"  // IWYU pragma: export

// One service of a plugin: the name it is exported under, its class and the
// kinds it serves (sbus::Kind::kCall, sbus::Kind::kMessage, or both joined
// with |). A class that serves a kind must override its method (on_call,
// on_message); the compiler checks it.
//   SBUS_SERVICE("add", AddService, sbus::Kind::kCall)
#define SBUS_SERVICE(name, ...) ::sbus::detail::make_service_factory<__VA_ARGS__>(name)

// The version string a plugin's descriptor carries (sbus_plugin::version):
// define SBUS_PLUGIN_VERSION before including this header, or on the
// compiler's command line; empty without.
#ifndef SBUS_PLUGIN_VERSION
#define SBUS_PLUGIN_VERSION ""
#endif

// Exports the plugin `plugin_name` with the services listed after it, as
// the C ABI's descriptor (sbus/plugin.h):
//   SBUS_PLUGIN("test", SBUS_SERVICE("echo", Echo, sbus::Kind::kCall),
//               SBUS_SERVICE("record", Record, sbus::Kind::kMessage))
#define SBUS_PLUGIN(plugin_name, ...)                                                               \
  namespace {                                                                                       \
  constexpr ::sbus_service_def sbus_plugin_services_[] = {__VA_ARGS__};                             \
  const ::sbus_plugin sbus_plugin_descriptor_ = {                                                   \
      SBUS_ABI_MAJOR,        SBUS_ABI_MINOR,                                                        \
      sizeof(::sbus_plugin), sizeof(::sbus_service_def),                                            \
      plugin_name,           SBUS_PLUGIN_VERSION,                                                   \
      sbus_plugin_services_, sizeof(sbus_plugin_services_) / sizeof(sbus_plugin_services_[0])};     \
  }                                                                                                 \
  extern "C" __attribute__((visibility("default"))) const ::sbus_plugin* sbus_plugin_descriptor() { \
    return &sbus_plugin_descriptor_;                                                                \
  }
