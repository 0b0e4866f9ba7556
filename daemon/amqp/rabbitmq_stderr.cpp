// The stderr of the static rabbitmq-c (see daemon/CMakeLists.txt).
//
// Debian's librabbitmq.a is compiled as position-independent executable
// code: amqp_api.c.o reads libc's `stderr` through a PC-relative relocation,
// which a shared object (sbusd-worker.so, libsbus.so, sbus-tls.so) cannot
// have against a symbol of another library. The build renames that
// reference to this variable of the object's own, which holds libc's stderr
// from the object's start on. rabbitmq-c writes to it only in amqp_abort(),
// just before it aborts.
#include <cstdio>

extern "C" {
__attribute__((visibility("hidden"))) std::FILE* sbus_rabbitmq_stderr = stderr;
}
