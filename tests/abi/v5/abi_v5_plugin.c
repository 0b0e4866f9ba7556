/* A plugin built against the frozen header of ABI 5.0 (tests/abi/v5/sbus/,
 * never edited): frozen.echo answers its params unchanged. */
#include <sbus/plugin.h>

#include <stdlib.h>

static void* create(const sbus_host* host) {
  return (void*)host;
}

static void destroy(void* self) {
  (void)self;
}

static int echo(void* self, sbus_request* request) {
  const sbus_host* host = self;
  const sbus_str params = host->request_params(request);
  return host->reply_result(request, params.data, params.size) == SBUS_OK ? 0 : 1;
}

static const sbus_service_def services[] = {{
    .struct_size = sizeof(sbus_service_def),
    .kinds = SBUS_KIND_CALL,
    .name = "echo",
    .create = create,
    .on_call = echo,
    .destroy = destroy,
}};

static const sbus_plugin plugin = {
    .abi_major = SBUS_ABI_MAJOR,
    .abi_minor = SBUS_ABI_MINOR,
    .struct_size = sizeof(sbus_plugin),
    .service_struct_size = sizeof(sbus_service_def),
    .name = "frozen_v5",
    .version = "5.0",
    .services = services,
    .service_count = 1,
};

const sbus_plugin* sbus_plugin_descriptor(void) {
  return &plugin;
}
