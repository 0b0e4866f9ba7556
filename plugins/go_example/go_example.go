// An sbus plugin in Go on the C ABI of sbus/plugin.h, built with
// -buildmode=c-shared and Debian's go 1.19, no modules:
//
//	go.echo    (rpc)      answers its params unchanged
//	go.record  (message)  appends its params and a newline to the file of
//	                      its option `file`
//
// The service records and the descriptor are C (descriptor.c), and so is
// each service's state: a go_service in C memory, made by create() and
// freed by destroy() there, which Go may read without a lock or a lookup
// (C may not keep Go pointers; state made of Go values would go behind a
// runtime/cgo.Handle kept in it). on_call and on_message are the Go
// functions exported here: one cgo crossing into Go per call, and one back
// into C per host function it calls.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../plugin-sdk/include
#include <stdint.h>
#include <stdlib.h>
#include <sbus/plugin.h>

typedef struct go_service {
  const sbus_host* host;
  const sbus_context* context;
} go_service;

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
	"unsafe"
)

// The bytes of s where sbusd holds them, not copied: valid only as long as
// s is (a request's until its entry point returns).
func view(s C.sbus_str) []byte {
	if s.size == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(s.data)), int(s.size))
}

func fail(s *C.go_service, text string) C.int {
	t := C.CString(text)
	defer C.free(unsafe.Pointer(t))
	C.host_fail(s.host, t, C.size_t(len(text)))
	return 1
}

func option(s *C.go_service, key string) (string, bool) {
	count := C.host_option_count(s.host, s.context)
	for i := C.size_t(0); i < count; i++ {
		var k, v C.sbus_str
		if C.host_option(s.host, s.context, i, &k, &v) == C.SBUS_OK && string(view(k)) == key {
			return string(view(v)), true
		}
	}
	return "", false
}

//export goEcho
func goEcho(s *C.go_service, request *C.sbus_request) C.int {
	params := C.host_params(s.host, request)
	if C.host_reply(s.host, request, params.data, params.size) != C.SBUS_OK {
		return fail(s, "echo: the reply was refused")
	}
	return 0
}

//export goRecord
func goRecord(s *C.go_service, request *C.sbus_request) C.int {
	path, ok := option(s, "file")
	if !ok {
		return fail(s, "go.record needs options: {file: PATH}")
	}
	params := view(C.host_params(s.host, request))
	file, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		buffer := make([]byte, 0, len(params)+1)
		_, err = file.Write(append(append(buffer, params...), '\n'))
		if closeErr := file.Close(); err == nil {
			err = closeErr
		}
	}
	if err != nil {
		return fail(s, "go.record: "+err.Error())
	}
	line := fmt.Sprintf("recorded %d bytes", len(params))
	text := C.CString(line)
	defer C.free(unsafe.Pointer(text))
	C.host_log(s.host, s.context, C.SBUS_LOG_INFO, text, C.size_t(len(line)))
	return 0
}

func main() {}
