// sbus-metrics.so: the HTTP side of `metrics_listen`, served by
// libmicrohttpd on threads of its own in the metrics process
// (base/metrics_entry.hpp). Every answer comes from the last snapshot the
// supervisor sent; nothing here waits on the supervisor or a worker.
#include <microhttpd.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/listen_address.hpp"
#include "base/log.hpp"
#include "base/metrics_entry.hpp"

#define SBUS_MODULE_EXPORT __attribute__((visibility("default")))

namespace sbus {

namespace {

// A slow client is dropped after this long without progress; a request
// whose headers do not fit kRequestMemory is answered 431 by the library.
constexpr unsigned kClientTimeoutSeconds = 10;
constexpr std::size_t kRequestMemory = 16 * 1024;
constexpr unsigned kMaxClients = 32;
constexpr std::chrono::seconds kBindRetry{5};

// The newest snapshot and whether the supervisor is gone, shared by the
// reader thread, the library's threads and the main one.
struct Shared {
  std::mutex mutex;
  std::condition_variable changed;
  std::shared_ptr<const MetricsSnapshot> snapshot;
  bool ended = false;
};

void read_snapshots(int fd, Shared* shared) {
  SnapshotReader reader;
  char bytes[65536];
  for (;;) {
    const ssize_t n = ::read(fd, bytes, sizeof(bytes));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reader.add(bytes, static_cast<std::size_t>(n));
    while (std::optional<MetricsSnapshot> snapshot = reader.next()) {
      auto next = std::make_shared<const MetricsSnapshot>(std::move(*snapshot));
      std::lock_guard lock(shared->mutex);
      shared->snapshot = std::move(next);
    }
  }
  std::lock_guard lock(shared->mutex);
  shared->ended = true;
  shared->changed.notify_all();
}

MHD_Result respond(MHD_Connection* connection, unsigned status, const std::string& body, const char* type) {
  MHD_Response* response =
      MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  const MHD_Result queued = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return queued;
}

// The library's request callback, on its own thread; answers at the first
// call, once the headers are in (a body, which no path takes, is not read).
MHD_Result answer(void* cls, MHD_Connection* connection, const char* url, const char* method, const char*, const char*,
                  std::size_t*, void**) {
  constexpr const char* kText = "text/plain; charset=utf-8";
  if (std::strcmp(method, MHD_HTTP_METHOD_GET) != 0 && std::strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
    return respond(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n", kText);
  }
  auto* shared = static_cast<Shared*>(cls);
  std::shared_ptr<const MetricsSnapshot> snapshot;
  {
    std::lock_guard lock(shared->mutex);
    snapshot = shared->snapshot;
  }
  const std::string path = url;
  if (path != "/metrics" && path != "/healthz" && path != "/readyz") {
    return respond(connection, MHD_HTTP_NOT_FOUND, "not found: /metrics, /healthz and /readyz are served\n", kText);
  }
  if (snapshot == nullptr) return respond(connection, MHD_HTTP_SERVICE_UNAVAILABLE, "starting\n", kText);
  if (path == "/healthz") return respond(connection, snapshot->health_status, snapshot->health, kText);
  if (path == "/readyz") return respond(connection, snapshot->ready_status, snapshot->ready, kText);
  return respond(connection, MHD_HTTP_OK, snapshot->metrics, "text/plain; version=0.0.4; charset=utf-8");
}

using DaemonPtr = std::unique_ptr<MHD_Daemon, decltype(&MHD_stop_daemon)>;

// The library serving `listen`, or null (logged) when the address cannot
// be bound.
DaemonPtr start_daemon(const std::string& listen, Shared* shared) {
  std::string error;
  const int fd = bind_listen(listen, &error);
  if (fd < 0) {
    SBUS_LOG(kError) << "metrics_listen " << listen << ": " << error << "; the bus is served, retrying in "
                     << kBindRetry.count() << " s";
    return {nullptr, &MHD_stop_daemon};
  }
  MHD_Daemon* daemon = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG, 0, nullptr, nullptr, &answer, shared,
      MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_TIMEOUT, kClientTimeoutSeconds, MHD_OPTION_CONNECTION_LIMIT,
      kMaxClients, MHD_OPTION_CONNECTION_MEMORY_LIMIT, kRequestMemory, MHD_OPTION_END);
  if (daemon == nullptr) {
    ::close(fd);
    SBUS_LOG(kError) << "metrics_listen " << listen << ": the HTTP server did not start; retrying in "
                     << kBindRetry.count() << " s";
    return {nullptr, &MHD_stop_daemon};
  }
  SBUS_LOG(kInfo) << "serving /metrics, /healthz and /readyz on " << listen;
  return {daemon, &MHD_stop_daemon};
}

}  // namespace

}  // namespace sbus

extern "C" SBUS_MODULE_EXPORT int sbus_metrics_serve(const char* listen, int snapshot_fd, int log_level) {
  using namespace sbus;
  log_init("metrics", static_cast<LogLevel>(log_level));
  Shared shared;
  std::thread reader(read_snapshots, snapshot_fd, &shared);
  DaemonPtr daemon{nullptr, &MHD_stop_daemon};
  std::unique_lock lock(shared.mutex);
  while (!shared.ended) {
    if (daemon == nullptr) {
      lock.unlock();
      daemon = start_daemon(listen, &shared);
      lock.lock();
    }
    shared.changed.wait_for(lock, kBindRetry, [&] { return shared.ended; });
  }
  lock.unlock();
  if (daemon != nullptr) {
    daemon.reset();
    if (const std::string path = unix_socket_path(listen); !path.empty()) ::unlink(path.c_str());
  }
  reader.join();
  return 0;
}
