/* Descriptors the loader must refuse, each naming its reason: one source,
 * built once per defect with -DSBUS_DEFECT=NAME (tests/CMakeLists.txt).
 * Every refusal happens before any function of the plugin but the
 * descriptor's is called. */
#include <sbus/plugin.h>

#include <stdint.h>

#define FUTURE_MAJOR 1
#define FUTURE_MINOR 2
#define SMALL_DESCRIPTOR 3
#define SMALL_SERVICE 4
#define NULL_NAME 5
#define NO_SERVICES 6
#define NULL_SERVICE_NAME 7
#define UNKNOWN_KIND 8
#define NO_ON_CALL 9
#define NO_CREATE 10
#define NULL_DESCRIPTOR 11

#if SBUS_DEFECT == FUTURE_MAJOR
/* A plugin of a future major ABI: only abi_major keeps its place across
 * major versions, so the rest is junk the loader must never read. */
static const uint32_t descriptor[8] = {999, 0xdead, 0xbeef, 7, 0xffffffffu, 0xffffffffu, 1, 1};
const sbus_plugin* sbus_plugin_descriptor(void) {
  return (const sbus_plugin*)(const void*)descriptor;
}
#elif SBUS_DEFECT == NULL_DESCRIPTOR
const sbus_plugin* sbus_plugin_descriptor(void) {
  return NULL;
}
#else
static int state;

static void* create(const sbus_host* host) {
  (void)host;
  return &state;
}

static int on_call(void* self, sbus_request* request) {
  (void)self;
  (void)request;
  return 0;
}

static void destroy(void* self) {
  (void)self;
}

static const sbus_service_def services[] = {{
    .struct_size = sizeof(sbus_service_def),
#if SBUS_DEFECT == UNKNOWN_KIND
    /* A bit a later ABI might give a new kind. */
    .kinds = SBUS_KIND_CALL | (1u << 7),
#else
    .kinds = SBUS_KIND_CALL,
#endif
#if SBUS_DEFECT == NULL_SERVICE_NAME
    .name = NULL,
#else
    .name = "future",
#endif
    .create = SBUS_DEFECT == NO_CREATE ? NULL : create,
    .on_call = SBUS_DEFECT == NO_ON_CALL ? NULL : on_call,
    .destroy = destroy,
}};

static const sbus_plugin descriptor = {
    .abi_major = SBUS_ABI_MAJOR,
#if SBUS_DEFECT == FUTURE_MINOR
    .abi_minor = SBUS_ABI_MINOR + 1,
#else
    .abi_minor = SBUS_ABI_MINOR,
#endif
#if SBUS_DEFECT == SMALL_DESCRIPTOR
    .struct_size = 16,
#else
    .struct_size = sizeof(sbus_plugin),
#endif
#if SBUS_DEFECT == SMALL_SERVICE
    .service_struct_size = 8,
#else
    .service_struct_size = sizeof(sbus_service_def),
#endif
#if SBUS_DEFECT == NULL_NAME
    .name = NULL,
#else
    .name = "baddescriptor",
#endif
    .version = "0.0",
    .services = services,
#if SBUS_DEFECT == NO_SERVICES
    .service_count = 0,
#else
    .service_count = 1,
#endif
};

const sbus_plugin* sbus_plugin_descriptor(void) {
  return &descriptor;
}
#endif
