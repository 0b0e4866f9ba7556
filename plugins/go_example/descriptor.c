/* The descriptor of the Go example: C, since it holds pointers to the Go
 * functions that go_example.go exports. */
#include <sbus/plugin.h>

#include "_cgo_export.h"

static void* create(const sbus_host* host) {
  return goCreate((sbus_host*)host);
}

static int start(void* self, const sbus_context* context) {
  return goStart(self, (sbus_context*)context);
}

static int echo(void* self, sbus_request* request) {
  return goEcho(self, request);
}

static int record(void* self, sbus_request* request) {
  return goRecord(self, request);
}

static void destroy(void* self) {
  goDestroy(self);
}

static const sbus_service_def services[] = {
    {.struct_size = sizeof(sbus_service_def),
     .kinds = SBUS_KIND_CALL,
     .name = "echo",
     .create = create,
     .start = start,
     .on_call = echo,
     .destroy = destroy},
    {.struct_size = sizeof(sbus_service_def),
     .kinds = SBUS_KIND_MESSAGE,
     .name = "record",
     .create = create,
     .start = start,
     .on_message = record,
     .destroy = destroy},
};

static const sbus_plugin plugin = {
    .abi_major = SBUS_ABI_MAJOR,
    .abi_minor = SBUS_ABI_MINOR,
    .struct_size = sizeof(sbus_plugin),
    .service_struct_size = sizeof(sbus_service_def),
    .name = "go_example",
    .version = "1.0",
    .services = services,
    .service_count = sizeof services / sizeof services[0],
};

const sbus_plugin* sbus_plugin_descriptor(void) {
  return &plugin;
}
