// The part of the C++ SDK that maps sbus::Service onto the C ABI of
// sbus/plugin.h: the entry points SBUS_SERVICE puts in each service record,
// ServiceContext::from_host and the log. Included by sbus/plugin.hpp only,
// after the types it uses; nothing here is for plugin authors to call.
#pragma once

#include <rapidjson/document.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "sbus/log.hpp"
#include "sbus/plugin.h"
#include "sbus/sender.hpp"

namespace sbus {

// --- The export record: the C ABI's types (sbus/plugin.h) under the names
// this SDK has always used.

using ServiceFactory = sbus_service_def;
using PluginDescriptor = sbus_plugin;

// The exported symbol sbusd looks up in each plugin.
inline constexpr const char* kPluginSymbol = SBUS_PLUGIN_SYMBOL;

namespace detail {

inline std::string text(sbus_str s) {
  return s.size == 0 ? std::string() : std::string(s.data, s.size);
}

// The C ABI's sender status of a SenderError's kind, and back.
inline int sender_status(SenderError::Kind kind) {
  switch (kind) {
    case SenderError::Kind::kAddress: return SBUS_E_ADDRESS;
    case SenderError::Kind::kConnect: return SBUS_E_CONNECT;
    case SenderError::Kind::kPublish: return SBUS_E_PUBLISH;
    case SenderError::Kind::kUnroutable: return SBUS_E_UNROUTABLE;
    case SenderError::Kind::kTimeout: return SBUS_E_TIMEOUT;
    case SenderError::Kind::kConnectionLost: return SBUS_E_CONNECTION_LOST;
    case SenderError::Kind::kProtocol: return SBUS_E_PROTOCOL;
    case SenderError::Kind::kBlocked: return SBUS_E_BLOCKED;
  }
  return SBUS_E_FAILED;
}
inline SenderError::Kind sender_error_kind(int status) {
  switch (status) {
    case SBUS_E_ADDRESS: return SenderError::Kind::kAddress;
    case SBUS_E_CONNECT: return SenderError::Kind::kConnect;
    case SBUS_E_UNROUTABLE: return SenderError::Kind::kUnroutable;
    case SBUS_E_TIMEOUT: return SenderError::Kind::kTimeout;
    case SBUS_E_CONNECTION_LOST: return SenderError::Kind::kConnectionLost;
    case SBUS_E_PROTOCOL: return SenderError::Kind::kProtocol;
    case SBUS_E_BLOCKED: return SenderError::Kind::kBlocked;
    default: return SenderError::Kind::kPublish;
  }
}

// SenderOptions::hold through the host's context_hold: the C++ SDK's
// senders are the plugin's own, so their held messages cross the ABI as a
// release callback over a Release it keeps until sbusd drops it.
struct HeldSend {
  SenderOptions::Release release;
  std::string error;  // what the last release threw
};
inline int release_held_send(void* arg, const char* id, std::size_t id_size, sbus_str* error) noexcept {
  HeldSend& held = **static_cast<std::shared_ptr<HeldSend>*>(arg);
  int status = SBUS_E_FAILED;
  try {
    held.release(std::string(id, id_size));
    return SBUS_OK;
  } catch (const SenderError& e) {
    held.error = e.what();
    status = sender_status(e.kind());
  } catch (const std::exception& e) {
    held.error = e.what();
  } catch (...) {
    held.error = "unknown exception";
  }
  if (error != nullptr) *error = sbus_str{held.error.data(), held.error.size()};
  return status;
}
inline void drop_held_send(void* arg) noexcept {
  delete static_cast<std::shared_ptr<HeldSend>*>(arg);
}

inline bool hold_through_host(const sbus_host* host, const sbus_context* handle, SenderOptions::Release release,
                              bool now) {
  auto held = std::make_shared<HeldSend>(HeldSend{std::move(release), {}});
  const int status = host->context_hold(handle, now ? SBUS_SEND_NOW : 0u, &release_held_send, &drop_held_send,
                                        new std::shared_ptr<HeldSend>(held));
  if (status >= 0) return status == 1;
  throw SenderError(sender_error_kind(status), held->error.empty() ? "the outbox refused the message" : held->error);
}

// SenderOptions from sbusd's JSON (context_sender_settings); members it
// does not know are left as they are.
inline SenderOptions sender_options_of(sbus_str json) {
  SenderOptions options;
  rapidjson::Document d;
  d.Parse(json.data, json.size);
  if (d.HasParseError() || !d.IsObject()) return options;
  // (HasMember, not FindMember: clang's C++20 finds rapidjson's iterator
  // comparison ambiguous.)
  auto member = [&d](const char* key) -> const rapidjson::Value* { return d.HasMember(key) ? &d[key] : nullptr; };
  auto string = [&member](const char* key, std::string* out) {
    if (const rapidjson::Value* v = member(key); v != nullptr && v->IsString()) {
      out->assign(v->GetString(), v->GetStringLength());
    }
  };
  auto boolean = [&member](const char* key, bool* out) {
    if (const rapidjson::Value* v = member(key); v != nullptr && v->IsBool()) *out = v->GetBool();
  };
  if (const rapidjson::Value* brokers = member("brokers"); brokers != nullptr && brokers->IsArray()) {
    for (const auto& broker : brokers->GetArray()) {
      if (broker.IsString()) options.brokers.emplace_back(broker.GetString(), broker.GetStringLength());
    }
  }
  string("exchange", &options.exchange);
  string("secret", &options.secret);
  string("token", &options.token);
  string("caller", &options.caller);
  string("caller_key", &options.caller_key);
  if (const rapidjson::Value* v = member("connect_timeout_ms"); v != nullptr && v->IsInt64()) {
    options.connect_timeout = std::chrono::milliseconds(v->GetInt64());
  }
  string("tls_ca_file", &options.tls_ca_file);
  string("tls_cert_file", &options.tls_cert_file);
  string("tls_key_file", &options.tls_key_file);
  boolean("tls_verify", &options.tls_verify);
  if (const rapidjson::Value* v = member("retry"); v != nullptr && v->IsInt()) options.retry = v->GetInt();
  boolean("smart_route", &options.smart_route);
  boolean("send_deadline", &options.send_deadline);
  string("delay_exchange", &options.delay_exchange);
  string("events_exchange", &options.events_exchange);
  return options;
}

inline std::optional<std::chrono::system_clock::time_point> time_of(int has, std::int64_t unix_ms) {
  if (!has) return std::nullopt;
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(unix_ms));
}

// The request sbusd handed over, as the C++ SDK's Request.
inline Request request_of(const sbus_host* host, const sbus_request* r) {
  const sbus_str json = host->request_params(r);
  Request request(text(host->request_id(r)), text(host->request_node(r)), text(host->request_category(r)),
                  text(host->request_service(r)), Request::Borrowed{std::string_view(json.data, json.size)});
  std::int64_t ms = 0;
  const int has_deadline = host->request_deadline(r, &ms);
  request.set_deadline(time_of(has_deadline, ms));
  request.set_caller(text(host->request_caller(r)));
  request.set_topic(text(host->request_topic(r)));
  request.set_message_id(text(host->request_message_id(r)));
  return request;
}

// One service object and what the SDK keeps beside it: the state behind
// the C ABI's `self`.
struct ServiceState {
  const sbus_host* host;
  std::unique_ptr<Service> service;
  ServiceContext context;
};

// Runs `body`; an exception becomes a failure of the entry point (its
// what() through set_failure), as the C ABI has no exceptions.
template <typename F>
int guarded(const sbus_host* host, F&& body) noexcept {
  const char* what = "unknown exception";
  std::string text;
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    try {
      text = e.what();
      what = text.c_str();
    } catch (...) {
      what = "exception (out of memory)";
    }
  } catch (...) {
  }
  host->set_failure(what, std::strlen(what));
  return 1;
}

template <typename T>
void* create_service(const sbus_host* host) noexcept {
  try {
    return new ServiceState{host, std::make_unique<T>(), ServiceContext{}};
  } catch (...) {
    return nullptr;
  }
}

inline int start_service(void* self, const sbus_context* context) noexcept {
  auto* state = static_cast<ServiceState*>(self);
  return guarded(state->host, [&] {
    state->context = ServiceContext::from_host(state->host, context);
    state->service->start(state->context);
  });
}

// A Response becomes the one reply of the call; a result that is not JSON
// (send_json() given bad text) fails the call rather than reach the caller.
inline int call_service(void* self, sbus_request* r) noexcept {
  auto* state = static_cast<ServiceState*>(self);
  const sbus_host* host = state->host;
  return guarded(host, [&] {
    const Request request = request_of(host, r);
    Response response;
    state->service->on_call(request, response);
    const std::string& body = response.body();
    if (response.is_error()) {
      const std::string& code = response.error_code();
      host->reply_error(r, code.data(), code.size(), body.data(), body.size());
    } else if (host->reply_result(r, body.data(), body.size()) == SBUS_E_INVALID_JSON) {
      throw std::invalid_argument("its result is not one JSON value: " + body.substr(0, 200));
    }
  });
}

inline int message_service(void* self, sbus_request* r) noexcept {
  auto* state = static_cast<ServiceState*>(self);
  return guarded(state->host, [&] { state->service->on_message(request_of(state->host, r)); });
}

inline int event_service(void* self, sbus_request* r) noexcept {
  auto* state = static_cast<ServiceState*>(self);
  return guarded(state->host, [&] { state->service->on_event(request_of(state->host, r)); });
}

inline int stop_service(void* self) noexcept {
  auto* state = static_cast<ServiceState*>(self);
  return guarded(state->host, [&] { state->service->stop(); });
}

inline void destroy_service(void* self) noexcept {
  delete static_cast<ServiceState*>(self);
}

// Whether T overrides on_call / on_message: &T::on_call has the type of the
// class that declared it last. An overloaded name cannot be told: trusted.
template <typename T>
constexpr bool overrides_on_call() {
  if constexpr (requires { &T::on_call; }) {
    return !std::is_same_v<decltype(&T::on_call), decltype(&Service::on_call)>;
  } else {
    return true;
  }
}
template <typename T>
constexpr bool overrides_on_message() {
  if constexpr (requires { &T::on_message; }) {
    return !std::is_same_v<decltype(&T::on_message), decltype(&Service::on_message)>;
  } else {
    return true;
  }
}

template <typename T>
constexpr bool overrides_on_event() {
  if constexpr (requires { &T::on_event; }) {
    return !std::is_same_v<decltype(&T::on_event), decltype(&Service::on_event)>;
  } else {
    return true;
  }
}

template <typename T>
inline constexpr bool kAlwaysFalse = false;

template <typename T, Kind kKinds>
constexpr ServiceFactory make_service_factory(const char* name) {
  static_assert(std::is_base_of_v<Service, T>, "SBUS_SERVICE: the class must derive from sbus::Service");
  static_assert(static_cast<std::uint32_t>(kKinds) != 0 && (kKinds & kAllKinds) == kKinds,
                "SBUS_SERVICE: say the kinds the service serves: sbus::Kind::kCall, sbus::Kind::kMessage or both");
  static_assert(!serves(kKinds, Kind::kCall) || overrides_on_call<T>(),
                "SBUS_SERVICE: a service that serves sbus::Kind::kCall overrides on_call");
  static_assert(!serves(kKinds, Kind::kMessage) || overrides_on_message<T>(),
                "SBUS_SERVICE: a service that serves sbus::Kind::kMessage overrides on_message");
  static_assert(!serves(kKinds, Kind::kEvent) || overrides_on_event<T>(),
                "SBUS_SERVICE: a service that serves sbus::Kind::kEvent overrides on_event");
  return ServiceFactory{sizeof(ServiceFactory),
                        static_cast<std::uint32_t>(kKinds),
                        name,
                        &create_service<T>,
                        &start_service,
                        &call_service,
                        &message_service,
                        &event_service,
                        &stop_service,
                        &destroy_service};
}

// SBUS_SERVICE(EXPORT, CLASS) without kinds, as before ABI 3.
template <typename T>
constexpr ServiceFactory make_service_factory(const char* name) {
  static_assert(kAlwaysFalse<T>,
                "SBUS_SERVICE(EXPORT, CLASS, KINDS): since plugin ABI 3 a service says what it serves, "
                "e.g. SBUS_SERVICE(\"add\", AddService, sbus::Kind::kCall) (docs/plugins.md)");
  return ServiceFactory{
      sizeof(ServiceFactory), SBUS_KIND_CALL, name, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
}

}  // namespace detail

inline ServiceContext ServiceContext::from_host(const sbus_host* host, const sbus_context* handle) {
  ServiceContext context;
  context.node = detail::text(host->context_node(handle));
  context.category = detail::text(host->context_category(handle));
  context.service = detail::text(host->context_service(handle));
  const std::size_t count = host->context_option_count(handle);
  for (std::size_t i = 0; i < count; ++i) {
    sbus_str key{};
    sbus_str value{};
    if (host->context_option(handle, i, &key, &value) == SBUS_OK) {
      context.options[detail::text(key)] = detail::text(value);
    }
  }
  SenderOptions sender = detail::sender_options_of(host->context_sender_settings(handle));
  // The deadline of the call the service handles, asked each time.
  sender.inherited_deadline = [host, handle]() {
    std::int64_t ms = 0;
    const int has = host->context_deadline(handle, &ms);
    return detail::time_of(has, ms);
  };
  // What the service sends while it handles a delivery: held by sbusd
  // (a host older than the outbox has no context_hold: sent at once).
  if (host->struct_size >= offsetof(sbus_host, context_hold) + sizeof(host->context_hold) &&
      host->context_hold != nullptr) {
    sender.hold = [host, handle](SenderOptions::Release release, bool now) {
      return detail::hold_through_host(host, handle, std::move(release), now);
    };
  }
  context.sender_ = std::make_shared<const SenderOptions>(std::move(sender));
  context.host_ = host;
  context.handle_ = handle;
  return context;
}

inline void log(const ServiceContext& context, LogLevel level, std::string_view text) noexcept {
  if (context.host() != nullptr) {
    context.host()->log(context.handle(), static_cast<int>(level), text.data(), text.size());
  } else {
    sbus_log_outside(context.category.data(), context.category.size(), context.service.data(), context.service.size(),
                     static_cast<int>(level), text.data(), text.size());
  }
}

inline bool log_enabled(const ServiceContext& context, LogLevel level) noexcept {
  if (context.host() != nullptr) return context.host()->log_enabled(context.handle(), static_cast<int>(level)) != 0;
  return sbus_log_outside_enabled(static_cast<int>(level)) != 0;
}

inline void log_debug(const ServiceContext& context, std::string_view text) noexcept {
  log(context, LogLevel::kDebug, text);
}
inline void log_info(const ServiceContext& context, std::string_view text) noexcept {
  log(context, LogLevel::kInfo, text);
}
inline void log_warn(const ServiceContext& context, std::string_view text) noexcept {
  log(context, LogLevel::kWarn, text);
}
inline void log_error(const ServiceContext& context, std::string_view text) noexcept {
  log(context, LogLevel::kError, text);
}

}  // namespace sbus
