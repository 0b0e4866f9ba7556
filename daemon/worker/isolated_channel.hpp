// The channel between a worker and the process of an isolated service
// (docs/isolation.md): a Unix stream socket in the abstract namespace,
// named after the supervisor, the broker and the service, on which the
// worker sends one request at a time and the isolated process answers it.
//
// A frame is a 32-bit length (host order: both ends are the same build on
// the same host) followed by that many bytes: a list of fields, each a
// 32-bit length and its bytes. A request's fields are IsolatedRequest's, a
// reply's IsolatedReply's. Both ends check that the peer runs as their own
// user (SO_PEERCRED), since any process of the host may connect to an
// abstract socket.
//
// Blocking helpers, called by one thread per socket: the worker's service
// thread of the isolated service, the isolated process's main thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sbus {

// The longest frame either side reads: a call's params are bounded by
// max_message_bytes (at most 1 GiB), a reply by what the service answers.
inline constexpr std::uint32_t kMaxIsolatedFrame = (1u << 30) + 4096;

// What the worker hands the isolated process: the Request a service sees.
struct IsolatedRequest {
  enum class Kind : char { kCall = 'c', kMessage = 'm', kEvent = 'e' };
  Kind kind = Kind::kCall;
  std::string id;
  std::string category;
  std::string service;
  std::string topic;
  std::string caller;
  std::string message_id;             // the delivery's AMQP message_id; empty: none
  std::int64_t deadline_unix_ms = 0;  // 0: none
  std::string params;                 // JSON text
};

// What the isolated process answers. kOk: the handler succeeded and what
// it sent left (its outbox was released); a call's `body` is its result
// (or, with `code`, an error reply). kFailed: the handler failed, or the
// broker refused what it sent; `body` says why (a call's service_failed, a
// message's retry). kReleaseLost: the handler succeeded but the broker was
// lost while what it sent was released; `body` says why (the delivery is
// not acked, the broker delivers it again).
struct IsolatedReply {
  enum class Status : char { kOk = 'o', kFailed = 't', kReleaseLost = 'l' };
  Status status = Status::kOk;
  std::string code;
  std::string body;
};

std::vector<std::string> encode(const IsolatedRequest& request);
std::vector<std::string> encode(const IsolatedReply& reply);
// False when the fields are not a request or a reply.
bool decode(const std::vector<std::string>& fields, IsolatedRequest* request);
bool decode(const std::vector<std::string>& fields, IsolatedReply* reply);

// The abstract address of an isolated service's socket: "sbusd-isolate/
// SUPERVISOR_PID/BROKER_INDEX/CATEGORY.SERVICE" after a NUL byte.
std::string isolated_socket_name(pid_t supervisor, std::size_t broker_index, const std::string& service);

// A listening socket bound to `name` (non-blocking, close-on-exec), or -1
// with the reason in `error` (EADDRINUSE while a previous process still
// holds it).
int listen_isolated(const std::string& name, std::string* error);
// Connects to `name`; -1 with the reason in `error`. `peer` gets the
// listening process's pid; a peer of another user is refused.
int connect_isolated(const std::string& name, pid_t* peer, std::string* error);
// Whether the process at the other end of `fd` runs as this user.
bool same_user_peer(int fd, pid_t* peer = nullptr);

// Writes one frame of `fields`. False when the peer is gone.
bool write_frame(int fd, const std::vector<std::string>& fields);

enum class ReadResult { kFrame, kClosed, kUnread, kTimedOut };
// Reads one frame into `fields`, waiting until `deadline` at most (nullopt:
// without end). kClosed: the peer closed or broke the stream (a frame
// over kMaxIsolatedFrame, a torn frame). kUnread: the peer closed without
// reading what this side had sent (the kernel resets the connection then:
// ECONNRESET), so the last request was not run.
ReadResult read_frame(int fd, std::optional<std::chrono::steady_clock::time_point> deadline,
                      std::vector<std::string>* fields);

}  // namespace sbus
