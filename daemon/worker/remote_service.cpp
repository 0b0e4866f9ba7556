#include "worker/remote_service.hpp"

#include <signal.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

#include "base/log.hpp"
#include "protocol/wire_codec.hpp"

namespace sbus {
namespace {

using Steady = std::chrono::steady_clock;

// When the wait for an answer ends: kHangGrace past the caller's deadline.
std::optional<Steady::time_point> answer_deadline(const Request& request) {
  if (!request.deadline()) return std::nullopt;
  return Steady::now() + (*request.deadline() - std::chrono::system_clock::now()) + kHangGrace;
}

IsolatedRequest to_isolated(const Request& request, IsolatedRequest::Kind kind) {
  IsolatedRequest out;
  out.kind = kind;
  out.id = request.id();
  out.category = request.category();
  out.service = request.service();
  out.topic = request.topic();
  out.caller = request.caller();
  if (request.deadline()) {
    out.deadline_unix_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(request.deadline()->time_since_epoch()).count();
  }
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  request.params().Accept(writer);
  out.params.assign(buffer.GetString(), buffer.GetSize());
  return out;
}

}  // namespace

RemoteService::RemoteService(std::string name, std::string socket)
    : name_(std::move(name)), socket_(std::move(socket)) {}

RemoteService::~RemoteService() {
  disconnect();
}

void RemoteService::start(const ServiceContext&) {
  // Not an error when its process is not listening yet: the first call waits.
  std::string why;
  connect(Steady::now(), &why);
}

void RemoteService::stop() {
  disconnect();
}

void RemoteService::disconnect() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  pid_.store(0, std::memory_order_relaxed);
}

bool RemoteService::connect(Steady::time_point until, std::string* why) {
  if (fd_ >= 0) return true;
  for (;;) {
    pid_t peer = 0;
    fd_ = connect_isolated(socket_, &peer, why);
    if (fd_ >= 0) {
      pid_.store(peer, std::memory_order_relaxed);
      SBUS_LOG(kInfo) << log_service(name_) << log_worker_pid(peer) << "isolated service " << name_
                      << ": connected to its process pid " << peer;
      return true;
    }
    if (Steady::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

RemoteService::Failure RemoteService::run(const Request& request, IsolatedRequest::Kind kind, IsolatedReply* reply,
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
    pid = pid_.load(std::memory_order_relaxed);
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

void RemoteService::on_call(const Request& request, Response& response) {
  IsolatedReply reply;
  std::string why;
  switch (run(request, IsolatedRequest::Kind::kCall, &reply, &why)) {
    case Failure::kNone: break;
    case Failure::kUnavailable: response.error(errc::kServiceUnavailable, why); return;
    case Failure::kEnded: response.error(errc::kInterrupted, why); return;
    case Failure::kHung: response.error(errc::kDeadlineExceeded, why); return;
  }
  if (reply.status == IsolatedReply::Status::kThrew) throw std::runtime_error(reply.body);
  if (reply.code.empty()) {
    response.send_json(std::move(reply.body));
  } else {
    response.error(std::move(reply.code), std::move(reply.body));
  }
}

void RemoteService::on_message(const Request& request) {
  IsolatedReply reply;
  std::string why;
  // Each failure throws: the message is retried, then goes to the error
  // queue, as one whose plugin threw.
  if (run(request, IsolatedRequest::Kind::kMessage, &reply, &why) != Failure::kNone) throw std::runtime_error(why);
  if (reply.status == IsolatedReply::Status::kThrew) throw std::runtime_error(reply.body);
}

void RemoteService::on_event(const Request& request) {
  IsolatedReply reply;
  std::string why;
  if (run(request, IsolatedRequest::Kind::kEvent, &reply, &why) != Failure::kNone) throw std::runtime_error(why);
  if (reply.status == IsolatedReply::Status::kThrew) throw std::runtime_error(reply.body);
}

LoadedService remote_service_for(const ServiceConfig& service, std::size_t broker_index) {
  // The supervisor is the parent of the worker and of the isolated process.
  return LoadedService(nullptr, std::make_unique<RemoteService>(
                                    service.name, isolated_socket_name(::getppid(), broker_index, service.name)));
}

}  // namespace sbus
