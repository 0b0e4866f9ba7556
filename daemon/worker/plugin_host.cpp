#include "worker/plugin_host.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sbus/plugin.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "base/log.hpp"
#include "worker/params.hpp"

struct sbus_sender {
  explicit sbus_sender(const sbus_context* owner_context) : owner(owner_context), sender(owner_context->sender) {}
  const sbus_context* owner;
  sbus::Sender sender;
  // What the last function returned: valid until the next one.
  std::string result;
  std::string error_code;
  std::string error;
};

namespace sbus {

namespace {

// The contexts and senders handed out and still valid. A plugin may call
// context and sender functions from threads of its own, so under a lock.
struct Registry {
  std::mutex mutex;
  std::set<const sbus_context*> contexts;
  std::map<const sbus_sender*, std::unique_ptr<sbus_sender>> senders;
};

Registry& registry() {
  static Registry* instance = new Registry();  // never destroyed: plugin threads may outlive exit's destructors
  return *instance;
}

// The request the calling thread's plugin may use now, and its failure text.
thread_local sbus_request* tls_request = nullptr;
thread_local std::string* tls_failure = nullptr;

void log_misuse(const char* function, const char* what) {
  SBUS_LOG_LIMITED(kWarn, "plugin misuse")
      << "plugin called " << function << " with " << what << "; refused (SBUS_E_INVALID_HANDLE)";
}

const sbus_request* valid_request(const sbus_request* request, const char* function) {
  if (request == nullptr || request != tls_request) {
    log_misuse(function, "a request it was not given or no longer holds");
    return nullptr;
  }
  return request;
}

bool valid_context(const sbus_context* context, const char* function) {
  if (context != nullptr) {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    if (r.contexts.count(context) != 0) return true;
  }
  log_misuse(function, "a context it was not given or no longer holds");
  return false;
}

sbus_sender* valid_sender(const sbus_sender* sender, const char* function) {
  if (sender != nullptr) {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    if (auto found = r.senders.find(sender); found != r.senders.end()) return found->second.get();
  }
  log_misuse(function, "a sender it was not given or has closed");
  return nullptr;
}

sbus_str str(std::string_view text) {
  return sbus_str{text.data(), text.size()};
}

constexpr sbus_str kEmpty{"", 0};

// A view of (data, size) from a plugin; false for a null pointer with a size.
bool view(const char* data, std::size_t size, std::string_view* out) {
  if (data == nullptr && size != 0) return false;
  *out = data == nullptr ? std::string_view() : std::string_view(data, size);
  return true;
}

#define SBUS_REQUEST_FIELD(field)                                      \
  sbus_str request_##field(const sbus_request* request) {              \
    const sbus_request* r = valid_request(request, "request_" #field); \
    return r != nullptr ? str(r->field) : kEmpty;                      \
  }
SBUS_REQUEST_FIELD(id)
SBUS_REQUEST_FIELD(node)
SBUS_REQUEST_FIELD(category)
SBUS_REQUEST_FIELD(service)
SBUS_REQUEST_FIELD(topic)
SBUS_REQUEST_FIELD(caller)
SBUS_REQUEST_FIELD(message_id)
#undef SBUS_REQUEST_FIELD

sbus_str request_params(const sbus_request* request) {
  if (valid_request(request, "request_params") == nullptr) return kEmpty;
  // The text as the caller sent it, checked at admission: no document of
  // it is kept, nor written out again.
  return request->params.empty() ? str("null") : str(request->params);
}

int request_deadline(const sbus_request* request, std::int64_t* unix_ms) {
  const sbus_request* r = valid_request(request, "request_deadline");
  if (r == nullptr || !r->deadline) return 0;
  if (unix_ms != nullptr) {
    *unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(r->deadline->time_since_epoch()).count();
  }
  return 1;
}

// Status of a reply before it is stored.
int reply_check(sbus_request* request, const char* function) {
  if (valid_request(request, function) == nullptr) return SBUS_E_INVALID_HANDLE;
  if (!request->is_call) return SBUS_E_NOT_A_CALL;
  if (request->replied) return SBUS_E_ALREADY_REPLIED;
  return SBUS_OK;
}

int reply_result(sbus_request* request, const char* json, std::size_t json_size) {
  if (const int status = reply_check(request, "reply_result"); status != SBUS_OK) return status;
  std::string_view text;
  if (!view(json, json_size, &text)) return SBUS_E_INVALID_ARGUMENT;
  // One JSON value and nothing after it: the reply is spliced into the
  // reply's JSON as it is. Checked on the copy, whose NUL the fast scan
  // needs.
  request->body.assign(text);
  // A reply that is the params' own text (an echo, a pass-through) was
  // checked at admission already: one comparison instead of a parse.
  const bool echoed = !request->params.empty() && text == request->params;
  if (!echoed && !is_one_json_value(request->body)) {
    request->body.clear();
    return SBUS_E_INVALID_JSON;
  }
  request->replied = true;
  request->error_code.clear();
  return SBUS_OK;
}

int reply_error(sbus_request* request, const char* code, std::size_t code_size, const char* message,
                std::size_t message_size) {
  if (const int status = reply_check(request, "reply_error"); status != SBUS_OK) return status;
  std::string_view code_text;
  std::string_view message_text;
  if (!view(code, code_size, &code_text) || !view(message, message_size, &message_text)) {
    return SBUS_E_INVALID_ARGUMENT;
  }
  request->replied = true;
  request->error_code = code_text.empty() ? std::string_view("service_error") : code_text;
  request->body.assign(message_text);
  return SBUS_OK;
}

void set_failure(const char* text, std::size_t size) {
  std::string_view view_text;
  if (tls_failure == nullptr || !view(text, size, &view_text)) return;
  tls_failure->assign(view_text);
}

#define SBUS_CONTEXT_FIELD(field)                                                    \
  sbus_str context_##field(const sbus_context* context) {                            \
    return valid_context(context, "context_" #field) ? str(context->field) : kEmpty; \
  }
SBUS_CONTEXT_FIELD(node)
SBUS_CONTEXT_FIELD(category)
SBUS_CONTEXT_FIELD(service)
SBUS_CONTEXT_FIELD(sender_settings)
#undef SBUS_CONTEXT_FIELD

std::size_t context_option_count(const sbus_context* context) {
  return valid_context(context, "context_option_count") ? context->options.size() : 0;
}

int context_option(const sbus_context* context, std::size_t index, sbus_str* key, sbus_str* value) {
  if (!valid_context(context, "context_option")) return SBUS_E_INVALID_HANDLE;
  if (index >= context->options.size()) return SBUS_E_INVALID_ARGUMENT;
  if (key != nullptr) *key = str(context->options[index].first);
  if (value != nullptr) *value = str(context->options[index].second);
  return SBUS_OK;
}

int context_deadline(const sbus_context* context, std::int64_t* unix_ms) {
  if (!valid_context(context, "context_deadline") || !context->sender.inherited_deadline) return 0;
  const auto deadline = context->sender.inherited_deadline();
  if (!deadline) return 0;
  if (unix_ms != nullptr) {
    *unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline->time_since_epoch()).count();
  }
  return 1;
}

bool known_level(int level) {
  return level >= SBUS_LOG_DEBUG && level <= SBUS_LOG_ERROR;
}

void plugin_log(const sbus_context* context, int level, const char* text, std::size_t size) {
  std::string_view line;
  if (!valid_context(context, "log") || !known_level(level) || !view(text, size, &line)) return;
  const auto log_level = static_cast<LogLevel>(level);
  if (!log_enabled(log_level)) return;
  try {
    LogLine(log_level) << LogField{LogField::Key::kService, log_value(context->category + "." + context->service)}
                       << log_escape(context->category) << '.' << log_escape(context->service) << ": "
                       << log_escape(line);
  } catch (...) {
    // Out of memory building the line: a log line is not worth failing the call.
  }
}

int plugin_log_enabled(const sbus_context* context, int level) {
  return valid_context(context, "log_enabled") && known_level(level) && log_enabled(static_cast<LogLevel>(level));
}

sbus_sender* sender_open(const sbus_context* context) {
  if (!valid_context(context, "sender_open")) return nullptr;
  try {
    auto sender = std::make_unique<sbus_sender>(context);
    sbus_sender* handle = sender.get();
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.senders.emplace(handle, std::move(sender));
    return handle;
  } catch (...) {
    return nullptr;
  }
}

int sender_close(sbus_sender* sender) {
  std::unique_ptr<sbus_sender> owned;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto found = r.senders.find(sender);
    if (found == r.senders.end()) {
      log_misuse("sender_close", "a sender it was not given or has closed");
      return SBUS_E_INVALID_HANDLE;
    }
    owned = std::move(found->second);
    r.senders.erase(found);
  }
  return SBUS_OK;  // closed here, outside the lock
}

int status_of(SenderError::Kind kind) {
  return detail::sender_status(kind);
}

// Runs `send` on a checked sender, turning its exceptions into a status and
// the sender's error text.
template <typename F>
int with_sender(sbus_sender* handle, const char* function, F&& send) {
  sbus_sender* sender = valid_sender(handle, function);
  if (sender == nullptr) return SBUS_E_INVALID_HANDLE;
  sender->error.clear();
  try {
    return send(*sender);
  } catch (const SenderError& e) {
    sender->error = e.what();
    return status_of(e.kind());
  } catch (const std::exception& e) {
    sender->error = e.what();
  } catch (...) {
    sender->error = "unknown exception";
  }
  return SBUS_E_FAILED;
}

// SendOptions of sbus_send_options; false for flags or timing it cannot take.
bool send_options_of(const sbus_send_options* in, SendOptions* out) {
  if (in == nullptr) return true;
  if (in->struct_size < sizeof(std::uint32_t) * 2) return false;
  if ((in->flags & ~SBUS_SEND_NOW) != 0) return false;
  out->now = (in->flags & SBUS_SEND_NOW) != 0;
  if (in->struct_size < sizeof(sbus_send_options)) return true;  // flags only
  if (in->ttl_ms < 0 || in->delay_ms < 0 || in->at_unix_ms < 0) return false;
  if (in->ttl_ms > 0) out->ttl = std::chrono::milliseconds(in->ttl_ms);
  if (in->delay_ms > 0) out->delay = std::chrono::milliseconds(in->delay_ms);
  if (in->at_unix_ms > 0) out->at = std::chrono::system_clock::time_point(std::chrono::milliseconds(in->at_unix_ms));
  return true;
}

int sender_call(sbus_sender* handle, const char* address, std::size_t address_size, const char* params,
                std::size_t params_size, std::int64_t timeout_ms, sbus_str* result, sbus_str* error_code) {
  std::string_view to;
  std::string_view json;
  if (!view(address, address_size, &to) || !view(params, params_size, &json) || timeout_ms <= 0) {
    return valid_sender(handle, "sender_call") != nullptr ? SBUS_E_INVALID_ARGUMENT : SBUS_E_INVALID_HANDLE;
  }
  return with_sender(handle, "sender_call", [&](sbus_sender& sender) {
    CallResult reply = sender.sender.call(to, json, std::chrono::milliseconds(timeout_ms));
    sender.result = std::move(reply.message);
    sender.error_code = std::move(reply.error_code);
    if (result != nullptr) *result = str(sender.result);
    if (error_code != nullptr) *error_code = str(sender.error_code);
    return SBUS_OK;
  });
}

int sender_send(sbus_sender* handle, const char* address, std::size_t address_size, const char* params,
                std::size_t params_size, const sbus_send_options* options) {
  std::string_view to;
  std::string_view json;
  SendOptions send_options;
  if (!view(address, address_size, &to) || !view(params, params_size, &json) ||
      !send_options_of(options, &send_options)) {
    return valid_sender(handle, "sender_send") != nullptr ? SBUS_E_INVALID_ARGUMENT : SBUS_E_INVALID_HANDLE;
  }
  return with_sender(handle, "sender_send", [&](sbus_sender& sender) {
    sender.sender.send(to, json, send_options);
    return SBUS_OK;
  });
}

int sender_publish(sbus_sender* handle, const char* topic, std::size_t topic_size, const char* params,
                   std::size_t params_size, const sbus_send_options* options, int* delivered) {
  std::string_view to;
  std::string_view json;
  SendOptions send_options;
  if (!view(topic, topic_size, &to) || !view(params, params_size, &json) || !send_options_of(options, &send_options)) {
    return valid_sender(handle, "sender_publish") != nullptr ? SBUS_E_INVALID_ARGUMENT : SBUS_E_INVALID_HANDLE;
  }
  return with_sender(handle, "sender_publish", [&](sbus_sender& sender) {
    const bool taken = sender.sender.publish(to, json, send_options);
    if (delivered != nullptr) *delivered = taken ? 1 : 0;
    return SBUS_OK;
  });
}

sbus_str sender_error(const sbus_sender* handle) {
  const sbus_sender* sender = valid_sender(handle, "sender_error");
  return sender != nullptr ? str(sender->error) : kEmpty;
}

// context_hold: SenderOptions::hold (the service's Outbox) for a message a
// plugin sends through a sender of its own. drop(arg) runs once, when the
// last copy of `guard` goes: after the release, or when the Outbox drops it.
int context_hold(const sbus_context* context, std::uint32_t flags,
                 int (*release)(void*, const char*, std::size_t, sbus_str*), void (*drop)(void*), void* arg) {
  if (drop == nullptr) return SBUS_E_INVALID_ARGUMENT;
  std::shared_ptr<void> guard(arg, drop);
  if (!valid_context(context, "context_hold")) return SBUS_E_INVALID_HANDLE;
  if (release == nullptr || (flags & ~SBUS_SEND_NOW) != 0) return SBUS_E_INVALID_ARGUMENT;
  if (!context->sender.hold) return 0;
  try {
    const bool taken = context->sender.hold(
        [guard, release](const std::string& id) {
          sbus_str error{};
          const int status = release(guard.get(), id.data(), id.size(), &error);
          if (status != SBUS_OK) {
            throw SenderError(detail::sender_error_kind(status),
                              error.size == 0 ? "the plugin's release failed" : std::string(error.data, error.size));
          }
        },
        (flags & SBUS_SEND_NOW) != 0);
    return taken ? 1 : 0;
  } catch (const SenderError& e) {
    return status_of(e.kind());
  } catch (...) {
    return SBUS_E_FAILED;
  }
}

const sbus_host kHost = {
    SBUS_ABI_MAJOR,      SBUS_ABI_MINOR,
    sizeof(sbus_host),   0,
    &request_params,     &request_id,
    &request_node,       &request_category,
    &request_service,    &request_topic,
    &request_caller,     &request_message_id,
    &request_deadline,   &reply_result,
    &reply_error,        &set_failure,
    &context_node,       &context_category,
    &context_service,    &context_option_count,
    &context_option,     &context_sender_settings,
    &context_deadline,   &plugin_log,
    &plugin_log_enabled, &sender_open,
    &sender_close,       &sender_call,
    &sender_send,        &sender_publish,
    &sender_error,       &context_hold,
};

}  // namespace

const sbus_host* plugin_host() {
  return &kHost;
}

HostContext::HostContext(std::string node, std::string category, std::string service,
                         const std::map<std::string, std::string>& options, SenderOptions sender) {
  context_.node = std::move(node);
  context_.category = std::move(category);
  context_.service = std::move(service);
  context_.options.assign(options.begin(), options.end());
  context_.sender_settings = sender_settings_json(sender);
  context_.sender = std::move(sender);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.contexts.insert(&context_);
}

HostContext::~HostContext() {
  std::vector<std::unique_ptr<sbus_sender>> left_open;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.contexts.erase(&context_);
    for (auto it = r.senders.begin(); it != r.senders.end();) {
      if (it->second->owner == &context_) {
        left_open.push_back(std::move(it->second));
        it = r.senders.erase(it);
      } else {
        ++it;
      }
    }
  }
}

namespace {
thread_local std::string tls_failure_text;
}  // namespace

RequestScope::RequestScope(sbus_request* request) {
  tls_request = request;
  tls_failure_text.clear();
  tls_failure = &tls_failure_text;
}

RequestScope::~RequestScope() {
  tls_request = nullptr;
  tls_failure = nullptr;
}

std::string RequestScope::failure(std::string_view fallback) const {
  return tls_failure_text.empty() ? std::string(fallback) : tls_failure_text;
}

std::string sender_settings_json(const SenderOptions& options) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  auto text = [&w](const char* key, const std::string& value) {
    w.Key(key);
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
  };
  w.StartObject();
  w.Key("brokers");
  w.StartArray();
  for (const std::string& broker : options.brokers)
    w.String(broker.data(), static_cast<rapidjson::SizeType>(broker.size()));
  w.EndArray();
  text("exchange", options.exchange);
  text("secret", options.secret);
  text("token", options.token);
  text("caller", options.caller);
  text("caller_key", options.caller_key);
  w.Key("connect_timeout_ms");
  w.Int64(options.connect_timeout.count());
  text("tls_ca_file", options.tls_ca_file);
  text("tls_cert_file", options.tls_cert_file);
  text("tls_key_file", options.tls_key_file);
  w.Key("tls_verify");
  w.Bool(options.tls_verify);
  w.Key("retry");
  w.Int(options.retry);
  w.Key("smart_route");
  w.Bool(options.smart_route);
  w.Key("send_deadline");
  w.Bool(options.send_deadline);
  text("delay_exchange", options.delay_exchange);
  text("events_exchange", options.events_exchange);
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace sbus
