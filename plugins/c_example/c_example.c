/* An sbus plugin in C11 against the C ABI alone (sbus/plugin.h): no C++,
 * no libsbus.so.
 *   c.echo    (rpc)      answers {"echo": PARAMS, "calls": N}, N counting
 *                        the calls this service object answered
 *   c.relay   (rpc)      calls NODE.TO (its option `to`, CATEGORY.SERVICE)
 *                        with its params through the node's sender and
 *                        answers what that answered
 *   c.record  (message)  appends its params and a newline to the file of
 *                        its option `file` */
#include <sbus/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct service {
  const sbus_host* host;
  const sbus_context* context;
  unsigned long calls;
  sbus_sender* sender; /* relay's, opened on first use */
} service;

static void* create(const sbus_host* host) {
  service* s = calloc(1, sizeof *s);
  if (s != NULL) s->host = host;
  return s;
}

static void destroy(void* self) {
  free(self);
}

static int start(void* self, const sbus_context* context) {
  ((service*)self)->context = context;
  return 0;
}

static int stop(void* self) {
  service* s = self;
  if (s->sender != NULL) s->host->sender_close(s->sender);
  s->sender = NULL;
  return 0;
}

static int fail(const sbus_host* host, const char* text) {
  host->set_failure(text, strlen(text));
  return 1;
}

/* The option `key`, or an empty string. */
static sbus_str option(const service* s, const char* key) {
  const size_t count = s->host->context_option_count(s->context);
  for (size_t i = 0; i < count; ++i) {
    sbus_str k, v;
    if (s->host->context_option(s->context, i, &k, &v) == SBUS_OK && k.size == strlen(key) &&
        memcmp(k.data, key, k.size) == 0) {
      return v;
    }
  }
  return (sbus_str){"", 0};
}

static int echo(void* self, sbus_request* request) {
  service* s = self;
  const sbus_str params = s->host->request_params(request);
  ++s->calls;
  char tail[48];
  const int tail_size = snprintf(tail, sizeof tail, ",\"calls\":%lu}", s->calls);
  const size_t size = 9 + params.size + (size_t)tail_size;
  char* json = malloc(size);
  if (json == NULL) return fail(s->host, "out of memory");
  memcpy(json, "{\"echo\":", 8);
  memcpy(json + 8, params.data, params.size);
  memcpy(json + 8 + params.size, tail, (size_t)tail_size);
  const int status = s->host->reply_result(request, json, size - 1);
  free(json);
  return status == SBUS_OK ? 0 : fail(s->host, "echo: the reply was refused");
}

static int relay(void* self, sbus_request* request) {
  service* s = self;
  const sbus_str to = option(s, "to");
  if (to.size == 0) return fail(s->host, "c.relay needs options: {to: CATEGORY.SERVICE}");
  if (s->sender == NULL) s->sender = s->host->sender_open(s->context);
  if (s->sender == NULL) return fail(s->host, "c.relay: no sender");
  const sbus_str node = s->host->context_node(s->context);
  char address[512];
  const int address_size = snprintf(address, sizeof address, "%.*s.%.*s", (int)node.size, node.data, (int)to.size, to.data);
  if (address_size < 0 || (size_t)address_size >= sizeof address) return fail(s->host, "c.relay: address too long");
  const sbus_str params = s->host->request_params(request);
  sbus_str result, code;
  const int status = s->host->sender_call(s->sender, address, (size_t)address_size, params.data, params.size, 10000,
                                          &result, &code);
  if (status != SBUS_OK) {
    const sbus_str why = s->host->sender_error(s->sender);
    s->host->set_failure(why.data, why.size);
    return 1;
  }
  if (code.size != 0) return s->host->reply_error(request, code.data, code.size, result.data, result.size) != SBUS_OK;
  return s->host->reply_result(request, result.data, result.size) != SBUS_OK;
}

static int record(void* self, sbus_request* request) {
  service* s = self;
  const sbus_str file = option(s, "file");
  if (file.size == 0) return fail(s->host, "c.record needs options: {file: PATH}");
  char path[4096];
  snprintf(path, sizeof path, "%.*s", (int)file.size, file.data);
  FILE* out = fopen(path, "a");
  if (out == NULL) return fail(s->host, "c.record: cannot open its file");
  const sbus_str params = s->host->request_params(request);
  const int written = fwrite(params.data, 1, params.size, out) == params.size && fputc('\n', out) != EOF;
  if (fclose(out) != 0 || !written) return fail(s->host, "c.record: cannot write its file");
  char line[64];
  const int line_size = snprintf(line, sizeof line, "recorded %zu bytes", params.size);
  s->host->log(s->context, SBUS_LOG_INFO, line, (size_t)line_size);
  return 0;
}

#define SERVICE(NAME, KINDS, CALL, MESSAGE)                                                       \
  {                                                                                             \
    .struct_size = sizeof(sbus_service_def), .kinds = KINDS, .name = NAME, .create = create,    \
    .start = start, .on_call = CALL, .on_message = MESSAGE, .stop = stop, .destroy = destroy \
  }

static const sbus_service_def services[] = {
    SERVICE("echo", SBUS_KIND_CALL, echo, NULL),
    SERVICE("relay", SBUS_KIND_CALL, relay, NULL),
    SERVICE("record", SBUS_KIND_MESSAGE, NULL, record),
};

static const sbus_plugin plugin = {
    .abi_major = SBUS_ABI_MAJOR,
    .abi_minor = SBUS_ABI_MINOR,
    .struct_size = sizeof(sbus_plugin),
    .service_struct_size = sizeof(sbus_service_def),
    .name = "c_example",
    .version = "1.0",
    .services = services,
    .service_count = sizeof services / sizeof services[0],
};

const sbus_plugin* sbus_plugin_descriptor(void) {
  return &plugin;
}
