#include "worker/isolated_process.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "base/crash_journal.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "base/worker_entry.hpp"
#include "config/sender_options.hpp"
#include "protocol/wire_codec.hpp"
#include "worker/isolated_channel.hpp"
#include "worker/plugin_loader.hpp"
#include "worker/service_runner.hpp"
#include "worker/status_pipe.hpp"

namespace sbus {
namespace {

// How long a new process tries to bind its socket while the one it
// replaces (a reload) still holds it.
constexpr std::chrono::seconds kBindWait{30};
// Workers of one broker at once: the serving one, and its replacement
// during a reload.
constexpr std::size_t kMaxConnections = 8;

class IsolatedServer {
 public:
  IsolatedServer(const Config& config, const ServiceConfig& service, CrashJournal* journal)
      : config_(config), service_(service), journal_(journal) {}

  // Runs one request in the plugin, on this thread.
  IsolatedReply run(IsolatedRequest request);
  LoadedService& loaded() { return loaded_; }
  void set_loaded(LoadedService loaded) { loaded_ = std::move(loaded); }
  std::shared_ptr<CurrentDeadline> current() const { return current_; }
  // What start() is given; valid until stop() has returned.
  ServiceContext& context() { return context_; }
  void claim_slot() {
    if (journal_ != nullptr) slot_ = journal_->claim_slot(getpid());
  }

 private:
  const Config& config_;
  const ServiceConfig& service_;
  CrashJournal* journal_;
  int slot_ = -1;
  ServiceContext context_;
  LoadedService loaded_{nullptr, nullptr};
  std::shared_ptr<CurrentDeadline> current_ = std::make_shared<CurrentDeadline>();
};

IsolatedReply IsolatedServer::run(IsolatedRequest request) {
  IsolatedReply reply;
  rapidjson::Document params;
  params.Parse(request.params.c_str(), request.params.size());
  const bool is_event = request.kind == IsolatedRequest::Kind::kEvent;
  Request call(request.id, config_.node, is_event ? service_.category : request.category,
               is_event ? service_.service : request.service, std::move(params));
  if (is_event) call.set_topic(request.topic);
  std::optional<std::chrono::system_clock::time_point> deadline;
  if (request.deadline_unix_ms != 0) {
    deadline = std::chrono::system_clock::time_point(std::chrono::milliseconds(request.deadline_unix_ms));
  }
  call.set_deadline(deadline);
  call.set_caller(request.caller);
  // A key no delivery has: it only tells the supervisor that this process
  // died during a call.
  if (slot_ >= 0) journal_->begin(slot_, CrashJournal::key("isolated", service_.name, request.id));
  if (request.kind == IsolatedRequest::Kind::kCall) current_->set(deadline);
  try {
    Service& service = loaded_.service();
    if (request.kind == IsolatedRequest::Kind::kCall) {
      Response response;
      service.on_call(call, response);
      reply.code = response.error_code();
      reply.body = response.body();
    } else if (request.kind == IsolatedRequest::Kind::kMessage) {
      service.on_message(call);
    } else {
      service.on_event(call);
    }
  } catch (const std::exception& e) {
    reply.status = IsolatedReply::Status::kThrew;
    reply.body = e.what();
  } catch (...) {
    reply.status = IsolatedReply::Status::kThrew;
    reply.body = "unknown exception";
  }
  current_->set(std::nullopt);
  if (slot_ >= 0) journal_->end(slot_);
  return reply;
}

// Loads and starts the plugin; false (said on the status pipe) when it
// cannot.
bool start_service(const Config& config, std::size_t broker_index, const ServiceConfig& service, IsolatedServer& server,
                   StatusPipe& status) {
  SenderOptions sender = sender_options_of(config);
  std::rotate(sender.brokers.begin(), sender.brokers.begin() + static_cast<std::ptrdiff_t>(broker_index),
              sender.brokers.begin() + static_cast<std::ptrdiff_t>(broker_index) + 1);
  const std::shared_ptr<CurrentDeadline> current = server.current();
  sender.inherited_deadline = [current] { return current->get(); };
  server.context() = ServiceContext{config.node, service.category, service.service, service.options, std::move(sender)};
  std::string error;
  try {
    PluginLoader loader;
    server.set_loaded(loader.create(service.plugin_path, service.export_name, sdk_kind(service.kind)));
    server.loaded().service().start(server.context());
    return true;
  } catch (const std::exception& e) {
    error = e.what()[0] != '\0' ? e.what() : "exception";
  } catch (...) {
    error = "unknown exception";
  }
  SBUS_LOG(kError) << log_service(service.name) << "isolated service " << service.name << ": " << error;
  std::string record(1, kStatusUnavailable);
  record += service.name + ": " + error;
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
  if (!start_service(config, broker_index, service, server, status)) return kWorkerExitFatal;
  const int listener = bind_socket(isolated_socket_name(::getppid(), broker_index, service.name), service.name);
  if (listener < 0) return kWorkerExitError;
  server.claim_slot();
  SBUS_LOG(kInfo) << log_service(service.name) << "isolated service " << service.name << " serving in pid " << getpid();
  serve(listener, signals, server);
  ::close(listener);
  try {
    server.loaded().service().stop();
  } catch (const std::exception& e) {
    SBUS_LOG(kWarn) << log_service(service.name) << "service " << service.name << ": stop() threw: " << e.what();
  } catch (...) {
    SBUS_LOG(kWarn) << log_service(service.name) << "service " << service.name << ": stop() threw";
  }
  SBUS_LOG(kInfo) << log_service(service.name) << "isolated service " << service.name << " (pid " << getpid()
                  << ") stopped";
  return kWorkerExitOk;
}

}  // namespace sbus
