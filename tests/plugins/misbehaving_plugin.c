/* Services that break the rules of sbus/plugin.h, each reporting the status
 * sbusd answered it, so that the tests can hold sbusd to the defined
 * outcome (and, under ASan, to touching nothing it should not):
 *   misbehave.twice      replies "first", then tries "second"
 *   misbehave.silent     returns without a reply
 *   misbehave.forged     uses a request, a context and a sender sbusd did
 *                        not give; answers the statuses as a JSON list
 *   misbehave.bad_args   replies with a null buffer and with text that is
 *                        not JSON; answers both statuses
 *   misbehave.stale      keeps its request and replies to it in stop()
 *   misbehave.reply_msg  a message service that tries to reply */
#include <sbus/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct state {
  const sbus_host* host;
  sbus_request* kept;
} state;

static void* create(const sbus_host* host) {
  state* s = calloc(1, sizeof *s);
  if (s != NULL) s->host = host;
  return s;
}

static void destroy(void* self) {
  free(self);
}

static int reply_text(const sbus_host* host, sbus_request* request, const char* json) {
  return host->reply_result(request, json, strlen(json));
}

static int twice(void* self, sbus_request* request) {
  const sbus_host* host = ((state*)self)->host;
  reply_text(host, request, "\"first\"");
  const int second = reply_text(host, request, "\"second\"");
  return second == SBUS_E_ALREADY_REPLIED ? 0 : 1;
}

static int silent(void* self, sbus_request* request) {
  (void)self;
  (void)request;
  return 0;
}

static int forged(void* self, sbus_request* request) {
  const sbus_host* host = ((state*)self)->host;
  char junk[64] = {0};
  const int reply = reply_text(host, (sbus_request*)(void*)junk, "1");
  const int close = host->sender_close((sbus_sender*)(void*)junk);
  const size_t options = host->context_option_count((const sbus_context*)(const void*)junk);
  const sbus_str node = host->context_node((const sbus_context*)(const void*)junk);
  const int opened = host->sender_open((const sbus_context*)(const void*)junk) == NULL;
  char answer[96];
  snprintf(answer, sizeof answer, "[%d,%d,%zu,%zu,%d]", reply, close, options, node.size, opened);
  return reply_text(host, request, answer) == SBUS_OK ? 0 : 1;
}

static int bad_args(void* self, sbus_request* request) {
  const sbus_host* host = ((state*)self)->host;
  const int null_buffer = host->reply_result(request, NULL, 5);
  const int not_json = reply_text(host, request, "{\"a\": 1} trailing");
  char answer[64];
  snprintf(answer, sizeof answer, "[%d,%d]", null_buffer, not_json);
  return reply_text(host, request, answer) == SBUS_OK ? 0 : 1;
}

static int stale(void* self, sbus_request* request) {
  state* s = self;
  s->kept = request;
  return reply_text(s->host, request, "\"kept\"");
}

static int stale_stop(void* self) {
  state* s = self;
  if (s->kept == NULL) return 0;
  char text[64];
  snprintf(text, sizeof text, "stale reply: %d", reply_text(s->host, s->kept, "1"));
  s->host->set_failure(text, strlen(text));
  return 1;
}

static int reply_msg(void* self, sbus_request* request) {
  const sbus_host* host = ((state*)self)->host;
  char text[64];
  snprintf(text, sizeof text, "reply to a message: %d", reply_text(host, request, "1"));
  host->set_failure(text, strlen(text));
  return 1;
}

#define CALL_SERVICE(NAME, ENTRY, STOP)                                                                 \
  {                                                                                                   \
    .struct_size = sizeof(sbus_service_def), .kinds = SBUS_KIND_CALL, .name = NAME, .create = create, \
    .on_call = ENTRY, .stop = STOP, .destroy = destroy                                                \
  }

static const sbus_service_def services[] = {
    CALL_SERVICE("twice", twice, NULL),
    CALL_SERVICE("silent", silent, NULL),
    CALL_SERVICE("forged", forged, NULL),
    CALL_SERVICE("bad_args", bad_args, NULL),
    CALL_SERVICE("stale", stale, stale_stop),
    {.struct_size = sizeof(sbus_service_def),
     .kinds = SBUS_KIND_MESSAGE,
     .name = "reply_msg",
     .create = create,
     .on_message = reply_msg,
     .destroy = destroy},
};

static const sbus_plugin descriptor = {
    .abi_major = SBUS_ABI_MAJOR,
    .abi_minor = SBUS_ABI_MINOR,
    .struct_size = sizeof(sbus_plugin),
    .service_struct_size = sizeof(sbus_service_def),
    .name = "misbehave",
    .version = "1.0",
    .services = services,
    .service_count = sizeof services / sizeof services[0],
};

const sbus_plugin* sbus_plugin_descriptor(void) {
  return &descriptor;
}
