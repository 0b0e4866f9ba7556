// RemoteService: what a worker runs in place of an isolated service's
// plugin (docs/isolation.md). It is a Service like any other to the
// worker's ServiceRunner (the same queue, deadlines, replies and acks);
// each on_call, on_message or on_event passes the Request over the
// isolated service's socket (isolated_channel.hpp) to its process, which
// runs the plugin, and waits for the answer.
//
// What a failure of that process costs is this service's call in progress
// only:
// - the process ends during a call (a crash, memory_limit): the call is
//   answered `interrupted`; a message or event throws, so that its retries
//   and the error queue apply as to a message that threw;
// - the call runs kHangGrace past its deadline: the process is killed
//   (SIGKILL; the supervisor starts it again) and the call answered
//   `deadline_exceeded`;
// - no process listens (starting, restarting, or given up on): the
//   service thread tries again for kConnectWait (or up to the deadline),
//   then a call is answered `service_unavailable`.
//
// Called on the service's thread only, except pid(), which any thread
// reads (sbus.stats).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>

#include <sbus/plugin.hpp>

#include "config/config.hpp"
#include "worker/isolated_channel.hpp"
#include "worker/plugin_loader.hpp"

namespace sbus {

inline constexpr std::chrono::milliseconds kHangGrace{1000};
inline constexpr std::chrono::milliseconds kConnectWait{5000};

class RemoteService : public Service {
 public:
  // `name`: CATEGORY.SERVICE; `socket`: isolated_socket_name() of it.
  RemoteService(std::string name, std::string socket);
  ~RemoteService() override;
  RemoteService(const RemoteService&) = delete;
  RemoteService& operator=(const RemoteService&) = delete;

  void start(const ServiceContext& context) override;
  void stop() override;
  void on_call(const Request& request, Response& response) override;
  void on_message(const Request& request) override;
  void on_event(const Request& request) override;

  // The isolated process this worker talks to now; 0 when not connected.
  pid_t pid() const { return pid_.load(std::memory_order_relaxed); }

 private:
  enum class Failure { kNone, kUnavailable, kEnded, kHung };
  // Runs `request` in the isolated process; on kNone, `reply` is its
  // answer, else `why` says what happened.
  Failure run(const Request& request, IsolatedRequest::Kind kind, IsolatedReply* reply, std::string* why);
  bool connect(std::chrono::steady_clock::time_point until, std::string* why);
  void disconnect();

  std::string name_;
  std::string socket_;
  int fd_ = -1;
  std::atomic<pid_t> pid_{0};
};

// The stand-in a worker of broker `broker_index` runs for the isolated
// `service`: a RemoteService with no library.
LoadedService remote_service_for(const ServiceConfig& service, std::size_t broker_index);

}  // namespace sbus
