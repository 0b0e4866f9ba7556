/* The sbus plugin ABI, as a C11 header: what a plugin exports, the entry
 * points a service implements, and the functions sbusd offers it. A plugin
 * in any language that can export C functions (C, C++, Rust, Go) is an sbus
 * plugin; the C++ SDK (sbus/plugin.hpp) is a layer over this header.
 *
 * A plugin is a shared object that exports one function:
 *
 *   const sbus_plugin* sbus_plugin_descriptor(void);
 *
 * returning a pointer to a descriptor that lives as long as the library.
 * sbusd reads abi_major (the first member in every version) before anything
 * else and refuses a plugin of another major version without reading more.
 *
 * Compatibility: a plugin built against ABI MAJOR.MINOR loads in every sbusd
 * that speaks MAJOR.M with M >= MINOR. A minor version only adds: members at
 * the end of the structs below (each struct carries its own size, so sbusd
 * reads only what the plugin's header had, and a plugin reads only what its
 * own header has of sbus_host), new functions at the end of sbus_host, new
 * flag bits and kinds. A change that would break a built plugin bumps the
 * major number; sbusd then refuses the old plugins with a message that says
 * to rebuild. docs/plugins.md states the promise and tests/abi/ holds a
 * frozen copy of each major version's first header, whose plugins every
 * later sbusd must keep loading.
 *
 * Memory: every sbus_str sbusd returns points into memory sbusd owns; it is
 * valid for as long as the function's comment says and never freed by the
 * plugin. Every buffer a plugin passes in is read during the call only and
 * copied if sbusd keeps it: the plugin may free or reuse it once the call
 * returns. No function hands ownership across the boundary except create()
 * and destroy() (the service's state) and sender_open() / sender_close().
 *
 * Threads: each configured service has a thread of its own. start, on_call,
 * on_message, on_event and stop of one service object run on it, one at a
 * time; different services run in parallel, so state a plugin shares between
 * its services needs a lock. create and destroy run on the worker's main
 * thread, before start and after stop. Which thread may call each host
 * function is said at the function.
 *
 * Status: host functions that can fail return an int, SBUS_OK (0) or a
 * negative SBUS_E_* code; none of them aborts, whatever it is given. A
 * handle sbusd did not give (or no longer holds valid) is answered
 * SBUS_E_INVALID_HANDLE and logged; it is never dereferenced.
 */
#ifndef SBUS_PLUGIN_H
#define SBUS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 5.0: the first C ABI. Versions 1 to 4 were C++ layouts (docs/plugins.md). */
#define SBUS_ABI_MAJOR 5
#define SBUS_ABI_MINOR 0

/* The name of the function a plugin exports. */
#define SBUS_PLUGIN_SYMBOL "sbus_plugin_descriptor"

/* The kinds of delivery a service serves, as bits of a set. A new kind takes
 * a new bit (and a minor version); sbusd refuses a set with bits it does
 * not know. */
#define SBUS_KIND_CALL 1u    /* RPCs, to on_call: `kind: rpc` in sbusd's YAML */
#define SBUS_KIND_MESSAGE 2u /* fire-and-forget messages, to on_message: `kind: message` */
#define SBUS_KIND_EVENT 4u   /* published events of the YAML's `topics`, to on_event: `kind: event` */

/* Status codes of the host functions. */
#define SBUS_OK 0
#define SBUS_E_INVALID_HANDLE (-1)   /* a request, context or sender sbusd did not give, or no longer valid */
#define SBUS_E_INVALID_ARGUMENT (-2) /* a null pointer with a size, unknown flags, a bad option */
#define SBUS_E_ALREADY_REPLIED (-3)  /* a second reply to one call: the first one stands */
#define SBUS_E_NOT_A_CALL (-4)       /* a reply to a message or an event: nobody waits for one */
#define SBUS_E_INVALID_JSON (-5)     /* a result that is not one JSON value: not sent */
#define SBUS_E_ADDRESS (-10)         /* sender: a malformed address or topic, or bad timing options */
#define SBUS_E_CONNECT (-11)         /* sender: no broker accepted */
#define SBUS_E_PUBLISH (-12)         /* sender: the broker refused the publish */
#define SBUS_E_UNROUTABLE (-13)      /* sender: no queue takes it (no such node) */
#define SBUS_E_TIMEOUT (-14)         /* sender: no reply in time */
#define SBUS_E_CONNECTION_LOST (-15) /* sender: the connection was lost */
#define SBUS_E_PROTOCOL (-16)        /* sender: the broker or the peer broke the protocol */
#define SBUS_E_BLOCKED (-17)         /* sender: the broker is blocked by a resource alarm */
#define SBUS_E_FAILED (-18)          /* sender: anything else (out of memory) */

/* Log levels, as sbusd's log_level. */
#define SBUS_LOG_DEBUG 0
#define SBUS_LOG_INFO 1
#define SBUS_LOG_WARN 2
#define SBUS_LOG_ERROR 3

/* sbus_send_options.flags. */
/* Send at once, not when the handler returns (docs/plugins.md, "What a
 * handler sends"): what a service sends while it handles a delivery is
 * otherwise held, and leaves only when the handler succeeds. */
#define SBUS_SEND_NOW 1u

/* Bytes, not NUL-terminated (though sbusd's always have a NUL after them). */
typedef struct sbus_str {
  const char* data;
  size_t size;
} sbus_str;

/* Opaque handles: sbusd's, never made, copied or freed by a plugin. */
typedef struct sbus_request sbus_request; /* one call, message or event */
typedef struct sbus_context sbus_context; /* one configured service */
typedef struct sbus_sender sbus_sender;   /* one connection for outgoing calls */

typedef struct sbus_host sbus_host;

/* How sender_send and sender_publish send. Zero members mean "none". Set
 * struct_size to sizeof(sbus_send_options). */
typedef struct sbus_send_options {
  uint32_t struct_size;
  uint32_t flags;     /* SBUS_SEND_* bits; others are refused (SBUS_E_INVALID_ARGUMENT) */
  int64_t ttl_ms;     /* dropped unhandled if it still waits this long once due */
  int64_t delay_ms;   /* deferred delivery: due this long from now */
  int64_t at_unix_ms; /* deferred delivery: due at this time (not with delay_ms) */
} sbus_send_options;

/* One service of a plugin. Set struct_size to sizeof(sbus_service_def):
 * sbusd steps through the plugin's array with it. */
typedef struct sbus_service_def {
  uint32_t struct_size;
  uint32_t kinds; /* SBUS_KIND_* bits, at least one */
  /* The SERVICE part of CATEGORY.SERVICE the YAML maps to it (`export:`). */
  const char* name;
  /* Makes the service's state, which every other entry point receives as
   * `self`. `host` stays valid as long as the library is loaded. NULL:
   * the service cannot be created (it is then unavailable). Required. */
  void* (*create)(const sbus_host* host);
  /* Once, on the service's thread, before the first delivery. `context`
   * stays valid until stop() has returned. Returns 0; anything else means
   * the service cannot serve (it is unavailable until a restart or reload),
   * with the text given to host->set_failure as the reason. Optional (NULL). */
  int (*start)(void* self, const sbus_context* context);
  /* One call, answered with host->reply_result or host->reply_error during
   * on_call. Returns 0; anything else is a failure (as a C++ exception):
   * the caller gets `service_failed` with the set_failure text, and a reply
   * made before is dropped. Returning 0 without a reply answers
   * `service_failed` with "returned without a reply". Required for
   * SBUS_KIND_CALL. */
  int (*on_call)(void* self, sbus_request* request);
  /* One message. Returns 0 once it is handled (it is then acked); anything
   * else is a failure: retried after a back-off, up to max_retries more
   * times, then moved to the node's error queue with the set_failure text.
   * Required for SBUS_KIND_MESSAGE. */
  int (*on_message)(void* self, sbus_request* request);
  /* One event (host->request_topic says which), as on_message. Required for
   * SBUS_KIND_EVENT. */
  int (*on_event)(void* self, sbus_request* request);
  /* Once, on the service's thread, after the last delivery. A failure is
   * logged, nothing else. Optional (NULL). */
  int (*stop)(void* self);
  /* Frees the state create() made, after stop() (or instead of start()
   * when the service never started). Required. */
  void (*destroy)(void* self);
} sbus_service_def;

/* What sbus_plugin_descriptor() returns. Set struct_size to
 * sizeof(sbus_plugin) and service_struct_size to sizeof(sbus_service_def). */
typedef struct sbus_plugin {
  uint32_t abi_major; /* SBUS_ABI_MAJOR; the first member in every version */
  uint32_t abi_minor; /* SBUS_ABI_MINOR */
  uint32_t struct_size;
  uint32_t service_struct_size;
  const char* name;    /* unique among the plugins one sbusd loads; required */
  const char* version; /* the plugin's own version, for logs and stats; NULL or "" for none */
  const sbus_service_def* services;
  size_t service_count; /* at least 1 */
} sbus_plugin;

/* The functions sbusd offers, passed to create(). Valid as long as the
 * library is loaded. A plugin built against an older minor version reads
 * only the members its header has; one that wants a member added in a later
 * minor checks abi_minor (or struct_size) first. */
struct sbus_host {
  uint32_t abi_major;
  uint32_t abi_minor;
  uint32_t struct_size;
  uint32_t reserved;

  /* --- A request. On the service's thread only, during the entry point
   * that received it; afterwards its handle is invalid (calls answer
   * SBUS_E_INVALID_HANDLE and empty strings). Strings are valid as long as
   * the request. */

  /* The params: one JSON value (py-servicebus senders send a list or an
   * object). */
  sbus_str (*request_params)(const sbus_request* request);
  /* The caller's event id: opaque, unique per caller process. */
  sbus_str (*request_id)(const sbus_request* request);
  /* The node (queue) it was addressed to; its category and service (for an
   * event, the subscribing service's own). */
  sbus_str (*request_node)(const sbus_request* request);
  sbus_str (*request_category)(const sbus_request* request);
  sbus_str (*request_service)(const sbus_request* request);
  /* An event's topic as published (`orders.created`); empty otherwise. */
  sbus_str (*request_topic)(const sbus_request* request);
  /* Who sent it, as its token proved it: a caller id of the node's
   * `callers`, or "py-servicebus" for anyone signing with the shared secret. */
  sbus_str (*request_caller)(const sbus_request* request);
  /* The AMQP message_id the sender set (an sbus message id); empty when
   * none (py-servicebus never sets it). */
  sbus_str (*request_message_id)(const sbus_request* request);
  /* 1 and *unix_ms set when the caller stops waiting then (Unix time in
   * ms); 0 without a deadline (py-servicebus callers). A service that
   * works long should check it and stop early: what it answers after the
   * deadline is replaced by `deadline_exceeded`. */
  int (*request_deadline)(const sbus_request* request, int64_t* unix_ms);

  /* The answer to a call: a result (one JSON value, checked: anything else
   * is refused with SBUS_E_INVALID_JSON and not sent) or an error with a
   * short machine-readable code (empty: "service_error") and a text for a
   * person. The first reply stands; a second one is refused
   * (SBUS_E_ALREADY_REPLIED). SBUS_E_NOT_A_CALL for a message or event. */
  int (*reply_result)(sbus_request* request, const char* json, size_t json_size);
  int (*reply_error)(sbus_request* request, const char* code, size_t code_size, const char* message,
                     size_t message_size);

  /* The reason of the failure the running entry point is about to return
   * (start, on_call, on_message, on_event, stop): copied; the last call
   * wins. On the service's thread only; ignored elsewhere. */
  void (*set_failure)(const char* text, size_t text_size);

  /* --- The service's context. Any thread, from start() until stop() has
   * returned; afterwards SBUS_E_INVALID_HANDLE and empty strings. Strings
   * are valid as long as the context. */

  /* The agent's node name, and the service's name in the config. */
  sbus_str (*context_node)(const sbus_context* context);
  sbus_str (*context_category)(const sbus_context* context);
  sbus_str (*context_service)(const sbus_context* context);
  /* The service's `options:` map from the config: how many, and the
   * index-th pair (sorted by key). SBUS_E_INVALID_ARGUMENT past the end. */
  size_t (*context_option_count)(const sbus_context* context);
  int (*context_option)(const sbus_context* context, size_t index, sbus_str* key, sbus_str* value);
  /* The settings of the node's sender as one JSON object (the members of
   * the C++ SDK's SenderOptions: brokers, exchange, secret, token, ...),
   * for an SDK that makes senders of its own. Unknown members are to be
   * ignored: the object grows. */
  sbus_str (*context_sender_settings)(const sbus_context* context);
  /* 1 and *unix_ms set while the service handles a call with a deadline
   * (calls it makes should not outlive it); 0 otherwise. */
  int (*context_deadline)(const sbus_context* context, int64_t* unix_ms);

  /* One line in the worker's log at `level`, after "CATEGORY.SERVICE: ";
   * control characters and backslashes escaped. Any thread, also the
   * plugin's own; one write(2) per line. */
  void (*log)(const sbus_context* context, int level, const char* text, size_t text_size);
  /* 1 when a line at `level` would be written. */
  int (*log_enabled)(const sbus_context* context, int level);

  /* --- Outgoing calls, messages and events through the node's sender:
   * this worker's broker first, then the config's others, its exchange,
   * secret, token mode and TLS settings. sender_open makes a sender (it
   * connects on first use; NULL for an invalid context) for any thread,
   * one thread at a time; sender_close frees it. A sender still open when
   * stop() returns is closed by sbusd after destroy(). Calls made while
   * the service handles a call inherit that call's deadline. The strings
   * a sender returns are valid until its next function call. */
  sbus_sender* (*sender_open)(const sbus_context* context);
  int (*sender_close)(sbus_sender* sender);
  /* Calls ADDRESS (NODE.CATEGORY.SERVICE) with the JSON params and waits up
   * to timeout_ms for the reply. SBUS_OK with the reply: *result is the
   * result's JSON (or the error text) and *error_code empty on success, the
   * service's error code otherwise. A negative code: the call failed
   * (sender_error says why). */
  int (*sender_call)(sbus_sender* sender, const char* address, size_t address_size, const char* params,
                     size_t params_size, int64_t timeout_ms, sbus_str* result, sbus_str* error_code);
  /* A persistent message to a message service; returns once the broker has
   * confirmed it. `options` may be NULL. */
  int (*sender_send)(sbus_sender* sender, const char* address, size_t address_size, const char* params,
                     size_t params_size, const sbus_send_options* options);
  /* An event to `topic`; *delivered (may be NULL) is 1 when some queue took
   * it, 0 when nobody is subscribed (not an error). */
  int (*sender_publish)(sbus_sender* sender, const char* topic, size_t topic_size, const char* params,
                        size_t params_size, const sbus_send_options* options, int* delivered);
  /* The text of the sender's last failure; empty after a success. */
  sbus_str (*sender_error)(const sbus_sender* sender);

  /* --- The outbox, for an SDK that sends through senders of its own
   * (the C++ SDK does; sender_send and sender_publish hold by themselves).
   * Offers one outgoing message to the service's outbox. Any thread.
   * Returns 1 when the outbox took it: the service's thread calls
   * release(arg, id, id_size, &error) once the handler being run has
   * returned successfully (with SBUS_SEND_NOW in `flags`: before
   * context_hold returns), with the message id the message must carry;
   * release publishes it and returns SBUS_OK, or an SBUS_E_* sender status
   * with *error set to its text (valid until drop). Returns 0 when not
   * taken (no handler of this service runs on this thread): the caller
   * sends it as usual. A negative status: SBUS_E_INVALID_HANDLE or
   * SBUS_E_INVALID_ARGUMENT, or the status release returned for an
   * SBUS_SEND_NOW message. Whatever it returns, sbusd calls drop(arg)
   * exactly once, after the last release; it is the plugin's to free
   * `arg` there. A handler that fails has its held messages dropped
   * unreleased. */
  int (*context_hold)(const sbus_context* context, uint32_t flags,
                      int (*release)(void* arg, const char* message_id, size_t message_id_size, sbus_str* error),
                      void (*drop)(void* arg), void* arg);
};

/* What a plugin defines and exports (with default visibility when it builds
 * with hidden symbols): its descriptor, which must stay valid and unchanged
 * while the library is loaded. sbusd calls it once per load, before
 * anything else of the plugin, on the worker's main thread. */
#if defined(__GNUC__)
#define SBUS_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define SBUS_PLUGIN_EXPORT
#endif
SBUS_PLUGIN_EXPORT const sbus_plugin* sbus_plugin_descriptor(void);

#ifdef __cplusplus
}
#endif

#endif /* SBUS_PLUGIN_H */
