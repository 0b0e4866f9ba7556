#include "worker/worker_impl.hpp"

#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#include "amqp/port_probe.hpp"
#include "base/backoff.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "protocol/wire_codec.hpp"
#include "worker/heap_trim.hpp"
#include "worker/plugin_loader.hpp"
#include "worker/remote_service.hpp"
#include "worker/service_sender.hpp"
#include "worker/signed_reply.hpp"

// The worker's life and its loop; what it does with each delivery and
// outcome is worker_deliveries.cpp.
namespace sbus {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kReconnectFirst{100};
constexpr milliseconds kReconnectCap{10000};
// A connection that lived this long was healthy: the back-off starts over
// and the first reconnect is at once.
constexpr milliseconds kHealthyAfter{10000};
// While the broker is unreachable, how often its port is tried between
// reconnects: the back-off spaces out AMQP handshakes, not this.
constexpr milliseconds kPortWatch{200};
// The longest the loop sleeps while heartbeats are on: rabbitmq-c sends
// them and notices missed ones only when called. Without heartbeats, pings
// or a drain under way, an idle worker sleeps until its next metrics
// report.
constexpr int kPollMillis = 500;

// `wait` (ms, -1: none) shortened to when this thread's heap trim is due.
int heap_trim_wait(int wait) {
  const std::optional<HeapTrim::Clock::time_point> trim = thread_heap_trim().due();
  if (!trim) return wait;
  const long long until = std::chrono::ceil<milliseconds>(*trim - HeapTrim::Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(wait < 0 ? until : std::min<long long>(wait, until), 0, kPollMillis));
}

// How often the counters go to the supervisor (report_metrics()).
constexpr std::chrono::seconds kMetricsReportInterval{1};

}  // namespace

void Worker::start_services() {
  PluginLoader loader;
  for (const ServiceConfig& service : config_.services) {
    // A service that cannot load or start takes no other down: it is
    // answered service_unavailable, and the supervisor is told why.
    try {
      auto current = std::make_shared<CurrentDeadline>();
      auto outbox = std::make_shared<Outbox>(config_.node + "." + service.name);
      auto context = std::make_unique<HostContext>(config_.node, service.category, service.service, service.options,
                                                   service_sender_options(config_, broker_index_, current, outbox));
      // An isolated service's plugin runs in a process of its own (remote_service.hpp).
      auto runner = std::make_unique<ServiceRunner>(
          dispatcher_.size(), service,
          service.isolate ? remote_service_for(service, broker_index_)
                          : loader.create(service.plugin_path, service.export_name, sdk_kind(service.kind)),
          std::move(context), this, journal_, config_.max_retries, std::move(current), std::move(outbox));
      runner->start();
      admission_.add_service(dispatcher_.size(), runner->config());
      dispatcher_.add(std::move(runner));
    } catch (const Error& e) {
      SBUS_LOG(kError) << log_service(service.name) << e.what() << "; " << service.name
                       << " is unavailable until the next restart or reload, "
                       << "the other services serve";
      admission_.add_unavailable(service.name, e.what());
      report_unavailable(service.name, e.what());
    }
  }
  if (history_.replacing && !admission_.unavailable().empty()) {
    // A reload's new worker serves every service or none: the worker it
    // replaces keeps serving them all (the supervisor drops this one).
    throw PluginError(std::to_string(admission_.unavailable().size()) +
                      " service(s) could not load or start in a replacement worker: not connecting, the worker "
                      "it replaces keeps serving");
  }
  stats_.services.resize(dispatcher_.size());
  admission_.read_crashes();
  dispatcher_.start(static_cast<std::size_t>(config_.prefetch));
}

// One status record a service: kStatusUnavailable, "NAME: REASON", a line
// feed (the reason on one line).
void Worker::report_unavailable(const std::string& name, const std::string& reason) {
  std::string record(1, kStatusUnavailable);
  record += name + ": " + reason;
  std::replace(record.begin() + 1, record.end(), '\n', ' ');
  record += '\n';
  status_.send(record);
}

// Other agents of this node on this broker, on a thread of its own.
void Worker::start_peer_watch() {
  ConnectOptions options;
  options.heartbeat_seconds = 0;
  options.connection_name = "sbusd " + config_.node + " agent watch";
  options.tls = config_.tls;
  std::vector<std::string> names;
  for (const ServiceConfig& service : config_.services) names.push_back(service.name);
  peer_watch_ = std::make_unique<PeerWatch>(uri_, options, config_.exchange, config_.node, std::move(names));
  peer_watch_->start();
}

// A change of state, with the counters as they are at that moment.
void Worker::report(char status) {
  status_.send(std::string_view(&status, 1));
  report_metrics();
}

// The counters for the supervisor's metrics (kStatusMetrics); sent at most
// once a second by the loop, and at each change of state, when sbusd serves
// metrics (metrics_listen).
void Worker::report_metrics() {
  // Nobody reads them without metrics_listen: an idle worker then sleeps
  // until something happens, as it did before metrics.
  if (config_.metrics_listen.empty()) {
    next_report_ = Clock::time_point::max();
    return;
  }
  next_report_ = Clock::now() + kMetricsReportInterval;
  if (!status_.flush() || !status_.idle()) return;
  const SessionStats session = session_.stats();
  std::string record(1, kStatusMetrics);
  record += metrics_report(
      StatsSources{config_, uri_, history_, stats_, session, dispatcher_, admission_.unavailable(), peer_watch_.get()},
      dispatcher_.outstanding());
  record += '\n';
  status_.send(record);
}

bool Worker::connect() {
  if (!session_.open(dispatcher_.window().size())) return false;
  if (!dispatcher_.watch_socket(session_.fd())) {
    session_.abandon();
    return false;
  }
  session_.start();
  stats_.connected_at = Clock::now();
  ++stats_.connects;
  SBUS_LOG(kInfo) << "connected to " << uri_.redacted() << ", serving queue " << config_.node << " ("
                  << dispatcher_.size() << " services, prefetch " << config_.prefetch << ", window "
                  << dispatcher_.window().size() << ")";
  report(kStatusConnected);
  return true;
}

// Sleeps `duration`, or less: false on a stop signal; after an unreachable
// broker, true as soon as its port accepts connections again, so that a
// restarted broker is served within moments of coming back.
bool Worker::wait_to_reconnect(milliseconds duration) {
  const bool unreachable = session_.broker_unreachable();
  const auto until = Clock::now() + duration;
  for (auto now = Clock::now(); now < until; now = Clock::now()) {
    const auto left = std::chrono::duration_cast<milliseconds>(until - now);
    if (!sleep_unless_signalled(unreachable ? std::min(left, kPortWatch) : left)) return false;
    if (unreachable && port_accepts(uri_.host, uri_.port, kPortWatch)) {
      SBUS_LOG(kInfo) << uri_.redacted() << " accepts connections again";
      return true;
    }
  }
  return true;
}

bool Worker::check_signal() {
  signalfd_siginfo info{};
  while (::read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
    if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) {
      if (!session_.stopping()) SBUS_LOG(kInfo) << "signal " << info.ssi_signo << ": stopping";
      begin_stop();
    }
  }
  return session_.stopping();
}

bool Worker::sleep_unless_signalled(milliseconds duration) {
  pollfd fd{signal_fd_, POLLIN, 0};
  ::poll(&fd, 1, static_cast<int>(duration.count()));
  return !check_signal();
}

void Worker::begin_stop() {
  if (session_.stopping()) return;
  drain_deadline_ = Clock::now() + std::chrono::seconds(config_.drain_timeout_seconds);
  // Not started: leave them unacked, the broker gives them to the next consumer.
  forget_pending();
  session_.stop_consuming();
}

// The jobs not started yet go back to the broker unacked; their hmac
// nonces are let in again, or their redelivery (to the worker replacing
// this one, say) would be refused as a replay.
void Worker::forget_pending() {
  std::vector<std::string> handled_keys;
  std::vector<std::string> tokens;
  dispatcher_.forget_pending(&handled_keys, &tokens);
  for (const std::string& key : handled_keys) release_running_id(key, nullptr);
  for (const std::string& token : tokens) admission_.given_back(token);
}

void Worker::wake_services() {
  if (!dispatcher_.wake_services(socket_fd())) session_.lose();
}

// At the drain timeout: the calls still running are given up. As after a
// crash, a call is answered `interrupted` rather than run twice, unless its
// service is idempotent: then it stays unacked and the broker delivers it
// again. Messages stay unacked too (they run at least once). The crash
// journal keeps their keys either way: a redelivery to another worker of
// this sbusd is answered `interrupted` too, should this answer be lost.
void Worker::abandon_running() {
  for (Dispatcher::Abandoned& abandoned : dispatcher_.abandon_running()) {
    const Envelope& envelope = abandoned.call.envelope;
    const ServiceConfig& service = dispatcher_.runner(abandoned.runner).config();
    if (!envelope.is_call() || service.idempotent || !session_.current(envelope)) {
      SBUS_LOG(kWarn) << log_service(service.name) << log_event(abandoned.call.id) << "drain timeout: " << service.name
                      << " still running event " << log_value(abandoned.call.id)
                      << "; left to the broker for redelivery";
      session_.leave(envelope.delivery_tag);
      continue;
    }
    SBUS_LOG(kWarn) << log_service(service.name) << log_event(abandoned.call.id) << "drain timeout: " << service.name
                    << " still running event " << log_value(abandoned.call.id) << "; answered `interrupted`";
    Reply reply{abandoned.call.id,
                "the call to " + service.name + " was interrupted: the worker stopped and the drain timeout (" +
                    std::to_string(config_.drain_timeout_seconds) + " s) passed before it returned",
                errc::kInterrupted};
    answer(envelope, encode_signed_reply(&reply, envelope, config_.secret, config_.node),
           ReplyGuard::Caller::kAuthenticated);
  }
  session_.flush_acks();
}

std::string Worker::stats_json() {
  const SessionStats session = session_.stats();
  return sbus::stats_json(
      StatsSources{config_, uri_, history_, stats_, session, dispatcher_, admission_.unavailable(), peer_watch_.get()});
}

// Reads until nothing is ready (a read owed by the seat holder: the kernel
// woke only it for that data, and no new edge may come).
bool Worker::drain() {
  for (;;) {
    switch (session_.read_one(*this)) {
      case BrokerSession::Read::kFrame:
        if (!dispatcher_.count_read(socket_fd())) session_.lose();
        break;
      case BrokerSession::Read::kNothing: return true;
      case BrokerSession::Read::kLost: return false;
    }
  }
}

Worker::ServeEnd Worker::serve() {
  const ServeEnd end = serve_turns();
  commit_deferred();  // not left waiting through a reconnect or the stop
  wake_services();
  return end;
}

// One turn: completions and acks, the drain's end, owed and buffered
// reads, the route probe, then sleep until something happens.
Worker::ServeEnd Worker::serve_turns() {
  for (;;) {
    if (Clock::now() >= next_report_) report_metrics();
    commit_deferred_if_due();
    if (handled_dirty_ && Clock::now() >= next_handled_sync_) sync_handled();
    thread_heap_trim().trim_if_due(std::chrono::steady_clock::now());
    bool read_owed = false;
    if (!flush_completions(&read_owed)) return ServeEnd::kConnectionLost;
    session_.flush_acks();
    if (!session_.ok()) return ServeEnd::kConnectionLost;
    if (session_.stopping() && (dispatcher_.outstanding() == 0 || Clock::now() >= drain_deadline_)) {
      if (dispatcher_.outstanding() > 0) {
        SBUS_LOG(kWarn) << "drain timeout: " << dispatcher_.outstanding() << " calls still running are abandoned";
        abandon_running();
      }
      return ServeEnd::kStopped;
    }
    if (read_owed) {
      if (!drain()) return ServeEnd::kConnectionLost;
      continue;
    }
    // Frames rabbitmq-c already holds are not visible to poll. The service
    // threads woken for the deliveries read so far wait for a batch of
    // them: each wake-up then starts several jobs, not one.
    if (session_.has_unread()) {
      if (!dispatcher_.count_read(socket_fd())) session_.lose();
      if (session_.read_one(*this) == BrokerSession::Read::kLost) return ServeEnd::kConnectionLost;
      continue;
    }
    int wait = session_.heartbeats() ? kPollMillis : -1;
    if (!config_.metrics_listen.empty()) {
      // Awake at least for the next metrics report.
      const int report =
          static_cast<int>(std::chrono::duration_cast<milliseconds>(next_report_ - Clock::now()).count()) + 1;
      wait = std::max(wait < 0 ? report : std::min(wait, report), 0);
    }
    wait = heap_trim_wait(deferred_wait(handled_wait(wait)));
    if (const Step step = watch_broker(&wait); step != Step::kSleep) {
      if (step == Step::kLost) return ServeEnd::kConnectionLost;
      continue;
    }
    if (session_.stopping()) {
      const int left =
          static_cast<int>(std::chrono::duration_cast<milliseconds>(drain_deadline_ - Clock::now()).count()) + 1;
      wait = wait < 0 ? left : std::min(wait, left);
    }
    if (sleep_until_event(wait) == Step::kLost) return ServeEnd::kConnectionLost;
  }
}

// The route probe's part of a turn: a lost route restored, an overdue probe
// given up on, a due one sent; otherwise *wait shortened to the probe's next
// moment.
Worker::Step Worker::watch_broker(int* wait) {
  if (session_.route_lost()) {
    SBUS_LOG(kWarn) << "ping: the probe came back unroutable: queue " << config_.node << " is not bound to exchange "
                    << config_.exchange << "; binding it again";
    wake_services();
    return session_.restore_route() ? Step::kAgain : Step::kLost;
  }
  if (!session_.probe_wake()) return Step::kSleep;  // no pings
  if (session_.probe_overdue()) return Step::kLost;
  const auto now = Clock::now();
  if (session_.probe_due(now)) return session_.probe() ? Step::kAgain : Step::kLost;
  const std::optional<Clock::time_point> next = session_.probe_wake();
  const int until = static_cast<int>(std::chrono::duration_cast<milliseconds>(*next - now).count()) + 1;
  *wait = *wait < 0 ? until : std::min(*wait, until);
  return Step::kSleep;
}

// Sleeps in epoll_wait() without the session's lock, after waking the
// services that got jobs: the socket, the completion queue, the signals, or
// `wait` ms. Then reads the socket if it is readable.
Worker::Step Worker::sleep_until_event(int wait) {
  // Outcomes queued since the top of this turn are taken instead.
  if (!completions_.watch()) return Step::kAgain;
  if (!dispatcher_.take_wakes(&waking_, socket_fd())) session_.lose();
  const int epoll_fd = dispatcher_.epoll_fd();
  session_.unlock();
  Dispatcher::fire(&waking_);
  epoll_event events[4];
  const int ready = epoll_wait(epoll_fd, events, 4, wait);
  session_.lock();
  completions_.unwatch();
  if (ready < 0 && errno != EINTR) return Step::kLost;
  // Also on a timeout: rabbitmq-c sends a due heartbeat and notices a
  // missed one only inside its read calls.
  bool readable = ready == 0;
  for (int i = 0; i < ready; ++i) {
    if (events[i].data.u64 == Dispatcher::kSignalEvent) check_signal();
    if (events[i].data.u64 == Dispatcher::kSocketEvent) readable = true;
  }
  if (readable && session_.read_one(*this) == BrokerSession::Read::kLost) return Step::kLost;
  return Step::kAgain;
}

bool Worker::open_events() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal_fd_ = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  return signal_fd_ >= 0 && dispatcher_.open(signal_fd_, completions_.fd(), completions_.timer_fd());
}

int Worker::run() {
  // This thread is the connection thread from here on, and holds the
  // session's lock except while it sleeps (sleep_until_event()).
  session_.lock();
  session_.connection_thread().acquire();
  const bool started = start();
  if (started) {
    serve_connections();
    shut_down();
  }
  session_.connection_thread().release();
  session_.unlock();
  return started ? kWorkerExitOk : kWorkerExitFatal;
}

// The events, the services and the agent watch; false (logged) when the
// worker cannot run at all.
bool Worker::start() {
  if (!open_events()) {
    SBUS_LOG(kError) << "signalfd or epoll: " << std::strerror(errno);
    return false;
  }
  open_handled_store();
  try {
    start_services();
  } catch (const Error& e) {
    SBUS_LOG(kError) << e.what();
    dispatcher_.stop(Clock::time_point::max());
    return false;
  }
  start_peer_watch();
  // What the supervisor's heap and plugin loading left free: give it back.
  malloc_trim(0);
  return true;
}

// Connects, serves, and connects again after a loss, until stopped.
void Worker::serve_connections() {
  // Exponential back-off with jitter between failed connects, and after a
  // connection that did not stay up long: a broker that accepts and drops
  // at once is not hammered.
  Backoff backoff({kReconnectFirst, kReconnectCap, 0.25}, static_cast<std::uint32_t>(getpid()));
  bool connect_now = true;
  while (!check_signal()) {
    if (!connect_now) {
      const milliseconds wait = backoff.next();
      SBUS_LOG(kInfo) << "reconnecting to " << uri_.redacted() << " in " << wait.count() << " ms";
      if (!wait_to_reconnect(wait)) break;
    }
    connect_now = false;
    if (!connect()) continue;
    const auto connected_at = Clock::now();
    if (serve() == ServeEnd::kStopped) break;
    // Lost: jobs not started will be redelivered; running ones finish and
    // their replies are kept for their redelivery (finish()).
    session_.lose();
    report(kStatusDisconnected);
    forget_pending();
    dispatcher_.unwatch_socket(session_.fd());
    session_.abandon();
    if (Clock::now() - connected_at >= kHealthyAfter) {
      backoff.reset();
      connect_now = true;
    }
    // What a caller sent made the broker close it: nothing wrong with the
    // broker, and the address is a suspect now (ReplyGuard).
    if (session_.closed_by_reply()) connect_now = true;
  }
}

void Worker::shut_down() {
  dispatcher_.unwatch_socket(session_.fd());
  session_.close();
  dispatcher_.stop(session_.stopping() ? drain_deadline_ : Clock::time_point::max());
  commit_deferred();
  sync_handled();
  ::close(signal_fd_);
  SBUS_LOG(kInfo) << "stopped";
}

int run_worker(const Config& config, std::size_t broker_index, int status_fd, WorkerShared shared) {
  set_heap_thresholds();
  Worker worker(config, broker_index, status_fd, shared);
  return worker.run();
}

}  // namespace sbus
