// An sbus plugin in Go on the C ABI of sbus/plugin.h, built with
// -buildmode=c-shared and Debian's go 1.19, no modules:
//
//	go.echo    (rpc)      answers its params unchanged
//	go.record  (message)  appends its params and a newline to the file of
//	                      its option `file`
//
// The service records and the descriptor are C (descriptor.c); the entry
// points are the Go functions exported here. The state of a service lives
// on the Go side, in a map keyed by the handle given to sbusd, since C may
// not keep Go pointers.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../plugin-sdk/include
#include <stdint.h>
#include <stdlib.h>
#include <sbus/plugin.h>

// cgo cannot call through C function pointers: these do.
static inline sbus_str host_params(const sbus_host* h, const sbus_request* r) { return h->request_params(r); }
static inline int host_reply(const sbus_host* h, sbus_request* r, const char* d, size_t n) {
  return h->reply_result(r, d, n);
}
static inline void host_fail(const sbus_host* h, const char* d, size_t n) { h->set_failure(d, n); }
static inline size_t host_option_count(const sbus_host* h, const sbus_context* c) {
  return h->context_option_count(c);
}
static inline int host_option(const sbus_host* h, const sbus_context* c, size_t i, sbus_str* k, sbus_str* v) {
  return h->context_option(c, i, k, v);
}
static inline void host_log(const sbus_host* h, const sbus_context* c, int level, const char* d, size_t n) {
  h->log(c, level, d, n);
}
*/
import "C"

import (
	"fmt"
	"os"
	"sync"
	"unsafe"
)

type service struct {
	host    *C.sbus_host
	context *C.sbus_context
}

var (
	mutex    sync.Mutex
	services = map[uintptr]*service{}
	next     uintptr
)

func lookup(handle unsafe.Pointer) *service {
	mutex.Lock()
	defer mutex.Unlock()
	return services[uintptr(handle)]
}

func bytesOf(s C.sbus_str) []byte {
	if s.size == 0 {
		return nil
	}
	return C.GoBytes(unsafe.Pointer(s.data), C.int(s.size))
}

func (s *service) fail(text string) C.int {
	t := C.CString(text)
	defer C.free(unsafe.Pointer(t))
	C.host_fail(s.host, t, C.size_t(len(text)))
	return 1
}

func (s *service) option(key string) (string, bool) {
	count := C.host_option_count(s.host, s.context)
	for i := C.size_t(0); i < count; i++ {
		var k, v C.sbus_str
		if C.host_option(s.host, s.context, i, &k, &v) == C.SBUS_OK && string(bytesOf(k)) == key {
			return string(bytesOf(v)), true
		}
	}
	return "", false
}

//export goCreate
func goCreate(host *C.sbus_host) unsafe.Pointer {
	mutex.Lock()
	defer mutex.Unlock()
	next++
	services[next] = &service{host: host}
	// A handle, not a Go pointer: sbusd only hands it back.
	return unsafe.Pointer(next)
}

//export goDestroy
func goDestroy(self unsafe.Pointer) {
	mutex.Lock()
	defer mutex.Unlock()
	delete(services, uintptr(self))
}

//export goStart
func goStart(self unsafe.Pointer, context *C.sbus_context) C.int {
	lookup(self).context = context
	return 0
}

//export goEcho
func goEcho(self unsafe.Pointer, request *C.sbus_request) C.int {
	s := lookup(self)
	params := C.host_params(s.host, request)
	if C.host_reply(s.host, request, params.data, params.size) != C.SBUS_OK {
		return s.fail("echo: the reply was refused")
	}
	return 0
}

//export goRecord
func goRecord(self unsafe.Pointer, request *C.sbus_request) C.int {
	s := lookup(self)
	path, ok := s.option("file")
	if !ok {
		return s.fail("go.record needs options: {file: PATH}")
	}
	params := bytesOf(C.host_params(s.host, request))
	file, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		_, err = file.Write(append(params, '\n'))
		if closeErr := file.Close(); err == nil {
			err = closeErr
		}
	}
	if err != nil {
		return s.fail("go.record: " + err.Error())
	}
	line := fmt.Sprintf("recorded %d bytes", len(params))
	text := C.CString(line)
	defer C.free(unsafe.Pointer(text))
	C.host_log(s.host, s.context, C.SBUS_LOG_INFO, text, C.size_t(len(line)))
	return 0
}

func main() {}
