#include "worker/isolated_process.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "base/crash_journal.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "base/worker_entry.hpp"
#include "protocol/wire_codec.hpp"
#include "worker/isolated_channel.hpp"
#include "worker/outbox.hpp"
#include "worker/plugin_host.hpp"
#include "worker/plugin_loader.hpp"
#include "worker/service_runner.hpp"
#include "worker/service_sender.hpp"
#include "worker/status_pipe.hpp"

namespace sbus {
namespace {

// How long a new process tries to bind its socket while the one it
// replaces (a reload) still holds it.
constexpr std::chrono::seconds kBindWait{30};
// Workers of one broker at once: the serving one, and its replacement
// during a reload.
constexpr std::size_t kMaxConnections = 8;

// The plugin of the isolated service as a service thread runs it: its
// HostContext (a sender with the inherited deadline and the outbox's
// hold), the LoadedService, and around each request the outbox opened
// with the delivery's message id and released once the handler succeeded.
class IsolatedServer {
 public:
  IsolatedServer(const Config& config, const ServiceConfig& service, CrashJournal* journal)
      : config_(config),
        service_(service),
        journal_(journal),
        outbox_(std::make_shared<Outbox>(config.node + "." + service.name)) {}

  // Loads and starts the plugin; the reason when it cannot.
  std::optional<std::string> start(std::size_t broker_index);
  std::optional<std::string> stop() { return loaded_.stop(); }
  // Runs one request in the plugin, on this thread.
  IsolatedReply run(IsolatedRequest request);
  void claim_slot() {
    if (journal_ != nullptr) slot_ = journal_->claim_slot(getpid());
  }

 private:
  // The handler, then the release of what it sent.
  IsolatedReply handle(sbus_request& request, IsolatedRequest::Kind kind);

  const Config& config_;
  const ServiceConfig& service_;
  CrashJournal* journal_;
  int slot_ = -1;
  std::shared_ptr<Outbox> outbox_;
  std::shared_ptr<CurrentDeadline> current_ = std::make_shared<CurrentDeadline>();
  // Declared before the service: its senders are closed after destroy().
  std::unique_ptr<HostContext> context_;
  LoadedService loaded_{nullptr, sbus_service_def{}, nullptr};
};

std::optional<std::string> IsolatedServer::start(std::size_t broker_index) {
  try {
    context_ = std::make_unique<HostContext>(config_.node, service_.category, service_.service, service_.options,
                                             service_sender_options(config_, broker_index, current_, outbox_));
    PluginLoader loader;
    loaded_ = loader.create(service_.plugin_path, service_.export_name, sdk_kind(service_.kind));
    if (std::optional<std::string> failure = loaded_.start(context_->get())) {
      return failure->empty() ? std::string("exception") : *failure;
    }
    return std::nullopt;
  } catch (const std::exception& e) {
    return std::string(e.what()[0] != '\0' ? e.what() : "exception");
  }
}

IsolatedReply IsolatedServer::handle(sbus_request& request, IsolatedRequest::Kind kind) {
  IsolatedReply reply;
  outbox_->open(std::string(request.message_id));
  const std::optional<std::string> failure = kind == IsolatedRequest::Kind::kCall
                                                 ? loaded_.call(request)
                                                 : loaded_.deliver(request, kind == IsolatedRequest::Kind::kEvent);
  if (failure) {
    // What a handler that failed had sent never leaves.
    outbox_->discard();
    reply.status = IsolatedReply::Status::kFailed;
    reply.body = *failure;
    return reply;
  }
  Outbox::Released released = outbox_->release();
  if (!released.ok) {
    reply.status = released.connection_failed ? IsolatedReply::Status::kReleaseLost : IsolatedReply::Status::kFailed;
    reply.body = std::move(released.error);
    return reply;
  }
  reply.code = std::move(request.error_code);
  reply.body = std::move(request.body);
  return reply;
}

IsolatedReply IsolatedServer::run(IsolatedRequest in) {
  const bool is_call = in.kind == IsolatedRequest::Kind::kCall;
  sbus_request request;
  request.id = in.id;
  request.node = config_.node;
  request.category = in.category;
  request.service = in.service;
  request.topic = in.topic;
  request.caller = in.caller;
  request.message_id = in.message_id;
  // The params as the worker checked them: request_params() hands out
  // this text, unparsed here.
  request.params = in.params;
  if (in.deadline_unix_ms != 0) {
    request.deadline = std::chrono::system_clock::time_point(std::chrono::milliseconds(in.deadline_unix_ms));
  }
  request.is_call = is_call;
  // A key no delivery has: it only tells the supervisor that this process
  // died during a call.
  if (slot_ >= 0) journal_->begin(slot_, CrashJournal::key("isolated", service_.name, in.id));
  if (is_call) current_->set(request.deadline);
  IsolatedReply reply = handle(request, in.kind);
  current_->set(std::nullopt);
  if (slot_ >= 0) journal_->end(slot_);
  return reply;
}

// Loads and starts the plugin; false (said on the status pipe) when it
// cannot.
bool start_service(std::size_t broker_index, const ServiceConfig& service, IsolatedServer& server, StatusPipe& status) {
  const std::optional<std::string> error = server.start(broker_index);
  if (!error) return true;
  SBUS_LOG(kError) << log_service(service.name) << "isolated service " << service.name << ": " << *error;
  std::string record(1, kStatusUnavailable);
  record += service.name + ": " + *error;
  std::replace(record.begin() + 1, record.end(), '\n', ' ');
  status.send(record + "\n");
  return false;
}

int bind_socket(const std::string& name, const std::string& service) {
  const auto until = std::chrono::steady_clock::now() + kBindWait;
  for (;;) {
    std::string error;
    const int fd = listen_isolated(name, &error);
    if (fd >= 0) return fd;
    if (std::chrono::steady_clock::now() >= until) {
      SBUS_LOG(kError) << log_service(service) << "isolated service " << service << ": cannot listen: " << error;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Serves the connections of `listener` until `signals` reads SIGTERM or
// SIGINT: each request read is run and answered before the next is read.
void serve(int listener, int signals, IsolatedServer& server) {
  std::vector<int> connections;
  for (;;) {
    std::vector<pollfd> fds{{signals, POLLIN, 0}, {listener, POLLIN, 0}};
    for (const int fd : connections) fds.push_back({fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;
    if (fds[0].revents != 0) break;
    if (fds[1].revents != 0) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0 && (connections.size() >= kMaxConnections || !same_user_peer(fd))) {
        ::close(fd);
      } else if (fd >= 0) {
        connections.push_back(fd);
      }
    }
    for (std::size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      std::vector<std::string> fields;
      IsolatedRequest request;
      const bool ok = read_frame(fds[i].fd, std::nullopt, &fields) == ReadResult::kFrame && decode(fields, &request) &&
                      write_frame(fds[i].fd, encode(server.run(std::move(request))));
      if (!ok) {
        ::close(fds[i].fd);
        connections.erase(std::find(connections.begin(), connections.end(), fds[i].fd));
      }
    }
  }
  for (const int fd : connections) ::close(fd);
}

}  // namespace

int run_isolated(const Config& config, std::size_t broker_index, std::size_t service_index, int status_fd,
                 CrashJournal* journal) {
  const ServiceConfig& service = config.services.at(service_index);
  StatusPipe status(status_fd);
  IsolatedServer server(config, service, journal);
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  const int signals = ::signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signals < 0) {
    SBUS_LOG(kError) << "signalfd failed: " << std::strerror(errno);
    return kWorkerExitError;
  }
  if (!start_service(broker_index, service, server, status)) return kWorkerExitFatal;
  const int listener = bind_socket(isolated_socket_name(::getppid(), broker_index, service.name), service.name);
  if (listener < 0) return kWorkerExitError;
  server.claim_slot();
  SBUS_LOG(kInfo) << log_service(service.name) << "isolated service " << service.name << " serving in pid " << getpid();
  serve(listener, signals, server);
  ::close(listener);
  if (std::optional<std::string> failure = server.stop()) {
    SBUS_LOG(kWarn) << log_service(service.name) << "service " << service.name << ": stop() failed: " << *failure;
  }
  SBUS_LOG(kInfo) << log_service(service.name) << "isolated service " << service.name << " (pid " << getpid()
                  << ") stopped";
  return kWorkerExitOk;
}

}  // namespace sbus
