// sbusd's side of the plugin ABI (sbus/plugin.h): the host function table
// every plugin gets, and the handles behind its opaque types.
//
// Handles are checked before use, never trusted: a request is valid only on
// the thread running the entry point that received it (RequestScope), a
// context while its HostContext lives, a sender until it is closed. A
// handle that fails the check is answered SBUS_E_INVALID_HANDLE and logged.
#pragma once

#include <chrono>
#include <map>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sbus/plugin.h>
#include <sbus/sender.hpp>

// One call, message or event as the host hands it to a plugin. Made by the
// service thread around one entry point.
struct sbus_request {
  std::string_view id;
  std::string_view node;
  std::string_view category;
  std::string_view service;
  std::string_view topic;
  std::string_view caller;
  std::string_view message_id;
  std::string_view params;  // JSON text, checked (check_params()); empty: null
  std::optional<std::chrono::system_clock::time_point> deadline;
  bool is_call = false;

  // What the plugin answered (calls only).
  bool replied = false;
  std::string error_code;
  std::string body;
};

// One configured service's context, from before start() until after
// destroy(). Any thread may read it.
struct sbus_context {
  std::string node;
  std::string category;
  std::string service;
  std::vector<std::pair<std::string, std::string>> options;  // sorted by key
  sbus::SenderOptions sender;                                // with inherited_deadline
  std::string sender_settings;                               // `sender` as JSON
};

namespace sbus {

// The table passed to every plugin's create().
const sbus_host* plugin_host();

// A context registered as valid for as long as this object lives; the
// senders its plugin left open are closed when it goes.
class HostContext {
 public:
  HostContext(std::string node, std::string category, std::string service,
              const std::map<std::string, std::string>& options, SenderOptions sender);
  ~HostContext();
  HostContext(const HostContext&) = delete;
  HostContext& operator=(const HostContext&) = delete;

  const sbus_context* get() const { return &context_; }
  const SenderOptions& sender_options() const { return context_.sender; }

 private:
  sbus_context context_;
};

// Around one entry point on the service thread: makes `request` (may be
// null) the only one the thread's plugin may use, and collects the text the
// plugin gives set_failure().
class RequestScope {
 public:
  explicit RequestScope(sbus_request* request);
  ~RequestScope();
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;

  // The set_failure() text, or `fallback` when the plugin gave none.
  std::string failure(std::string_view fallback) const;
};

// SenderOptions as the JSON object context_sender_settings() returns.
std::string sender_settings_json(const SenderOptions& options);

}  // namespace sbus
