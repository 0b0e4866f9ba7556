#include "worker/remote_service.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "base/log.hpp"
#include "protocol/wire_codec.hpp"
#include "worker/isolated_channel.hpp"
#include "worker/plugin_host.hpp"

namespace sbus {
namespace {

using Steady = std::chrono::steady_clock;

// The pid each stand-in of this worker is connected to, by service name.
struct Pids {
  std::mutex mutex;
  std::map<std::string, pid_t> by_name;
};

Pids& pids() {
  static Pids* instance = new Pids();  // never destroyed: service threads may outlive exit's destructors
  return *instance;
}

void set_pid(const std::string& name, pid_t pid) {
  Pids& p = pids();
  std::lock_guard<std::mutex> lock(p.mutex);
  p.by_name[name] = pid;
}

// When the wait for an answer ends: kHangGrace past the caller's deadline.
std::optional<Steady::time_point> answer_deadline(const sbus_request& request) {
  if (!request.deadline) return std::nullopt;
  return Steady::now() + (*request.deadline - std::chrono::system_clock::now()) + kHangGrace;
}

IsolatedRequest to_isolated(const sbus_request& request, IsolatedRequest::Kind kind) {
  IsolatedRequest out;
  out.kind = kind;
  out.id = request.id;
  out.category = request.category;
  out.service = request.service;
  out.topic = request.topic;
  out.caller = request.caller;
  out.message_id = request.message_id;
  if (request.deadline) {
    out.deadline_unix_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(request.deadline->time_since_epoch()).count();
  }
  // The text the worker checked, as it came in (empty: null).
  out.params = request.params.empty() ? std::string_view("null") : request.params;
  return out;
}

class RemoteService {
 public:
  RemoteService(std::string name, std::string socket) : name_(std::move(name)), socket_(std::move(socket)) {}
  ~RemoteService() { disconnect(); }
  RemoteService(const RemoteService&) = delete;
  RemoteService& operator=(const RemoteService&) = delete;

  int start(const sbus_context* context);
  int stop();
  int on_call(sbus_request* request);
  int deliver(sbus_request* request, IsolatedRequest::Kind kind);

 private:
  enum class Failure { kNone, kUnavailable, kEnded, kHung };
  // Runs `request` in the isolated process; on kNone, `reply` is its
  // answer, else `why` says what happened.
  Failure run(const sbus_request& request, IsolatedRequest::Kind kind, IsolatedReply* reply, std::string* why);
  bool connect(Steady::time_point until, std::string* why);
  void disconnect();
  // The handler's answer, as the runner takes it from a plugin: 0, or a
  // failure with its text given to set_failure.
  int answer(const IsolatedReply& reply);

  std::string name_;
  std::string socket_;
  const sbus_context* context_ = nullptr;
  int fd_ = -1;
  pid_t pid_ = 0;
};

int fail(const std::string& why) {
  plugin_host()->set_failure(why.data(), why.size());
  return 1;
}

int RemoteService::start(const sbus_context* context) {
  context_ = context;
  // Not an error when its process is not listening yet: the first call waits.
  std::string why;
  connect(Steady::now(), &why);
  return 0;
}

int RemoteService::stop() {
  disconnect();
  return 0;
}

void RemoteService::disconnect() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  pid_ = 0;
  set_pid(name_, 0);
}

bool RemoteService::connect(Steady::time_point until, std::string* why) {
  if (fd_ >= 0) return true;
  for (;;) {
    fd_ = connect_isolated(socket_, &pid_, why);
    if (fd_ >= 0) {
      set_pid(name_, pid_);
      SBUS_LOG(kInfo) << log_service(name_) << log_worker_pid(pid_) << "isolated service " << name_
                      << ": connected to its process pid " << pid_;
      return true;
    }
    if (Steady::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

RemoteService::Failure RemoteService::run(const sbus_request& request, IsolatedRequest::Kind kind, IsolatedReply* reply,
                                          std::string* why) {
  const std::optional<Steady::time_point> deadline = answer_deadline(request);
  Steady::time_point connect_until = Steady::now() + kConnectWait;
  if (deadline && *deadline - kHangGrace < connect_until) connect_until = *deadline - kHangGrace;
  const std::vector<std::string> frame = encode(to_isolated(request, kind));
  // A request that could not be written, or that the process closed its
  // end without reading (it was stopping), was not run: once more on a new
  // connection (the process may have been replaced since the last call).
  ReadResult read = ReadResult::kUnread;
  pid_t pid = 0;
  std::vector<std::string> fields;
  for (int attempt = 0; attempt < 2 && read == ReadResult::kUnread; ++attempt) {
    if (!connect(connect_until, why)) {
      *why = "isolated service " + name_ + " has no process listening (starting or restarting): " + *why;
      return Failure::kUnavailable;
    }
    pid = pid_;
    read = write_frame(fd_, frame) ? read_frame(fd_, deadline, &fields) : ReadResult::kUnread;
    if (read == ReadResult::kUnread) disconnect();
  }
  if (read == ReadResult::kUnread) {
    *why = "isolated service " + name_ + ": its process closed the connection without reading the call";
    return Failure::kUnavailable;
  }
  if (read == ReadResult::kFrame && decode(fields, reply)) return Failure::kNone;
  disconnect();
  if (read == ReadResult::kTimedOut) {
    // A hung plugin: only killing its process frees the service.
    ::kill(pid, SIGKILL);
    *why = "isolated service " + name_ + " ran " + std::to_string(kHangGrace.count()) +
           " ms past the call's deadline: its process pid " + std::to_string(pid) + " was killed";
    SBUS_LOG(kError) << log_service(name_) << log_worker_pid(pid) << *why;
    return Failure::kHung;
  }
  *why = "isolated service " + name_ + ": its process pid " + std::to_string(pid) + " ended during the call";
  SBUS_LOG(kError) << log_service(name_) << log_worker_pid(pid) << *why;
  return Failure::kEnded;
}

int RemoteService::answer(const IsolatedReply& reply) {
  if (reply.status == IsolatedReply::Status::kOk) return 0;
  if (reply.status == IsolatedReply::Status::kReleaseLost && context_ != nullptr && context_->sender.hold) {
    // The handler succeeded in the isolated process, but what it sent did
    // not all leave: the worker's outbox meets the same failure when it
    // releases, and leaves the delivery unacked as for a service of its own.
    const std::string error = reply.body;
    const bool taken = context_->sender.hold(
        [error](const std::string&) { throw SenderError(SenderError::Kind::kConnectionLost, error); }, false);
    if (taken) return 0;
  }
  return fail(reply.body);
}

int RemoteService::on_call(sbus_request* request) {
  IsolatedReply reply;
  std::string why;
  const char* code = nullptr;
  switch (run(*request, IsolatedRequest::Kind::kCall, &reply, &why)) {
    case Failure::kNone: break;
    case Failure::kUnavailable: code = errc::kServiceUnavailable; break;
    case Failure::kEnded: code = errc::kInterrupted; break;
    case Failure::kHung: code = errc::kDeadlineExceeded; break;
  }
  // The reply is written into the request as reply_result and reply_error
  // would; its result was checked as one JSON value in the isolated process.
  request->replied = true;
  if (code != nullptr) {
    request->error_code = code;
    request->body = std::move(why);
    return 0;
  }
  request->error_code = std::move(reply.code);
  request->body = reply.body;
  return answer(reply);
}

int RemoteService::deliver(sbus_request* request, IsolatedRequest::Kind kind) {
  IsolatedReply reply;
  std::string why;
  // Each failure is the handler's: the message is retried, then goes to
  // the error queue, as one whose plugin failed.
  if (run(*request, kind, &reply, &why) != Failure::kNone) return fail(why);
  return answer(reply);
}

RemoteService* self_of(void* self) {
  return static_cast<RemoteService*>(self);
}

// The entry points of the stand-in's service record. None throws: each
// boundary of the C ABI is kept, as a plugin keeps it.
template <typename F>
int guarded(F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    return fail(e.what());
  } catch (...) {
    return fail("unknown exception");
  }
}

const sbus_service_def kRemoteDef = {
    sizeof(sbus_service_def),
    SBUS_KIND_CALL | SBUS_KIND_MESSAGE | SBUS_KIND_EVENT,
    "isolated",
    [](const sbus_host*) -> void* { return nullptr; },  // made by remote_service_for() alone
    [](void* self, const sbus_context* context) { return guarded([&] { return self_of(self)->start(context); }); },
    [](void* self, sbus_request* request) { return guarded([&] { return self_of(self)->on_call(request); }); },
    [](void* self, sbus_request* request) {
      return guarded([&] { return self_of(self)->deliver(request, IsolatedRequest::Kind::kMessage); });
    },
    [](void* self, sbus_request* request) {
      return guarded([&] { return self_of(self)->deliver(request, IsolatedRequest::Kind::kEvent); });
    },
    [](void* self) { return guarded([&] { return self_of(self)->stop(); }); },
    [](void* self) { delete self_of(self); },
};

}  // namespace

LoadedService remote_service_for(const ServiceConfig& service, std::size_t broker_index) {
  // The supervisor is the parent of the worker and of the isolated process.
  auto remote =
      std::make_unique<RemoteService>(service.name, isolated_socket_name(::getppid(), broker_index, service.name));
  return LoadedService(nullptr, kRemoteDef, remote.release());
}

pid_t isolated_pid(const std::string& name) {
  Pids& p = pids();
  std::lock_guard<std::mutex> lock(p.mutex);
  auto found = p.by_name.find(name);
  return found == p.by_name.end() ? 0 : found->second;
}

}  // namespace sbus
