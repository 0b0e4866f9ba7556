// The worker process's one object (run_worker() makes it): a loop over its
// parts, and what it does with each delivery and outcome. worker.cpp holds
// its life and its loop; worker_deliveries.cpp carries out admission's
// decisions and finishes outcomes, on the connection thread or on a service
// thread that holds the session's lock.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/thread_annotations.hpp"
#include "config/config.hpp"
#include "worker/admission.hpp"
#include "worker/broker_session.hpp"
#include "worker/completion_queue.hpp"
#include "worker/deferred_records.hpp"
#include "worker/dispatcher.hpp"
#include "worker/handled_store.hpp"
#include "worker/peer_watch.hpp"
#include "worker/service_runner.hpp"
#include "worker/status_pipe.hpp"
#include "worker/worker.hpp"
#include "worker/worker_stats.hpp"

namespace sbus {

// The worker: a loop over its parts. The BrokerSession reads deliveries
// and hands each to on_delivery(), where Admission decides and carry_out()
// does what it decided; the Dispatcher hands jobs to the service threads,
// whose outcomes come back through complete() (inline, when the connection
// thread sleeps) or the CompletionQueue, to finish().
//
// Every member but the completion queue is the connection thread's, shared
// with a service thread only while that thread holds the session's lock
// (complete(), read_socket()): the methods that touch them require it. The
// loop's own methods also require the connection thread's role, which run()
// takes on: a service thread cannot reach them.
class Worker final : public RunnerHost, private BrokerSession::DeliveryHandler {
 public:
  using Clock = std::chrono::steady_clock;

  Worker(const Config& config, std::size_t broker_index, int status_fd, WorkerShared shared)
      : config_(config),
        broker_index_(broker_index),
        uri_(config.broker_uris[broker_index]),
        status_(status_fd),
        journal_(shared.journal),
        history_(shared.history),
        session_(config_, uri_),
        admission_(config, shared.journal, shared.replay != nullptr ? shared.replay : ReplayCache::create(false)) {}
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  int run();

  // Service threads.
  bool complete(Outcome outcome) override;
  void hold(Outcome outcome) override;
  bool read_socket() override;
  void commit_records() override;

 private:
  enum class ServeEnd { kStopped, kConnectionLost };
  // What a part of a turn leaves to do: sleep, run the turn again, or
  // reconnect.
  enum class Step { kSleep, kAgain, kLost };

  bool open_events() REQUIRES(session_.mutex(), session_.connection_thread());
  bool start() REQUIRES(session_.mutex(), session_.connection_thread());
  void serve_connections() REQUIRES(session_.mutex(), session_.connection_thread());
  void shut_down() REQUIRES(session_.mutex(), session_.connection_thread());
  void start_services() REQUIRES(session_.mutex(), session_.connection_thread());
  void report_unavailable(const std::string& name, const std::string& reason);
  void start_peer_watch();
  void report(char status) REQUIRES(session_.mutex(), session_.connection_thread());
  void report_metrics() REQUIRES(session_.mutex(), session_.connection_thread());
  bool connect() REQUIRES(session_.mutex(), session_.connection_thread());
  bool wait_to_reconnect(std::chrono::milliseconds duration) REQUIRES(session_.mutex(), session_.connection_thread());
  bool sleep_unless_signalled(std::chrono::milliseconds duration)
      REQUIRES(session_.mutex(), session_.connection_thread());
  bool check_signal() REQUIRES(session_.mutex(), session_.connection_thread());
  void begin_stop() REQUIRES(session_.mutex(), session_.connection_thread());
  void forget_pending() REQUIRES(session_.mutex(), session_.connection_thread());
  void abandon_running() REQUIRES(session_.mutex(), session_.connection_thread());
  int socket_fd() const REQUIRES(session_.mutex()) { return session_.ok() ? session_.fd() : -1; }
  void wake_services() REQUIRES(session_.mutex(), session_.connection_thread());

  ServeEnd serve() REQUIRES(session_.mutex(), session_.connection_thread());
  ServeEnd serve_turns() REQUIRES(session_.mutex(), session_.connection_thread());
  Step watch_broker(int* wait) REQUIRES(session_.mutex(), session_.connection_thread());
  Step sleep_until_event(int wait) REQUIRES(session_.mutex(), session_.connection_thread());
  bool drain() REQUIRES(session_.mutex(), session_.connection_thread());

  void on_delivery(Delivery& delivery) override REQUIRES(session_.mutex());
  void carry_out(Decision& decision, const Delivery& delivery) REQUIRES(session_.mutex());
  void answer(const Envelope& envelope, std::string_view body, ReplyGuard::Caller caller) REQUIRES(session_.mutex());
  void answer_error(const Envelope& envelope, const std::string& id, const std::string& code,
                    const std::string& message, ReplyGuard::Caller caller) REQUIRES(session_.mutex());
  void refuse(const Decision& decision, const Delivery& delivery) REQUIRES(session_.mutex());
  void dead_letter(const Envelope& envelope, std::string_view body, const Headers& headers, const ErrorEntry& entry,
                   const std::string& event_service) REQUIRES(session_.mutex());
  void expire(const Envelope& envelope, const std::string& id, const std::string& message) REQUIRES(session_.mutex());
  void dispatch(Job job, std::size_t runner) REQUIRES(session_.mutex());
  void overflow(Job job, std::size_t runner) REQUIRES(session_.mutex());

  bool flush_completions(bool* read_owed) REQUIRES(session_.mutex(), session_.connection_thread());
  void finish(Outcome& outcome) REQUIRES(session_.mutex());
  bool finish_inline(Outcome& outcome) REQUIRES(session_.mutex());
  void finish_run(std::vector<Outcome>* left) REQUIRES(session_.mutex());
  std::string stats_json() REQUIRES(session_.mutex());

  // Handled once (worker_handled.cpp; docs/reliability.md#handled-once).
  void open_handled_store() REQUIRES(session_.mutex(), session_.connection_thread());
  void sync_handled() REQUIRES(session_.mutex(), session_.connection_thread());
  int handled_wait(int wait) const REQUIRES(session_.mutex());
  void dispatch_once(Job job, std::size_t runner) REQUIRES(session_.mutex());
  bool remember_handled(Outcome& outcome) REQUIRES(session_.mutex());
  void remember_all_handled(std::vector<Outcome>& outcomes) REQUIRES(session_.mutex());
  bool defer_record(Outcome& outcome) REQUIRES(session_.mutex());
  std::size_t commit_deferred(std::vector<HandledStore::Entry> entries = {}) REQUIRES(session_.mutex());
  void commit_deferred_if_due() REQUIRES(session_.mutex());
  int deferred_wait(int wait) const REQUIRES(session_.mutex());
  // Outcome::returned_mark of one remember_all_handled() has recorded, and
  // of one whose record waits in deferred_ (its mark kept there).
  static constexpr int kRecorded = -2;
  static constexpr int kDeferred = -3;
  void release_running_id(const std::string& key, const Outcome* outcome) REQUIRES(session_.mutex());
  void answer_duplicate(const Envelope& envelope, const std::string& id, std::string_view reply,
                        const std::string& code, const std::string& message) REQUIRES(session_.mutex());

  const Config& config_;
  std::size_t broker_index_;
  BrokerUri uri_;
  StatusPipe status_;
  Clock::time_point next_report_{};
  CrashJournal* journal_;
  const WorkerHistory history_;
  int signal_fd_ = -1;
  Clock::time_point drain_deadline_{};

  // Its lock is held by the connection thread except while it sleeps in
  // epoll_wait(): then a service thread may take it (complete(),
  // read_socket()).
  BrokerSession session_;
  Admission admission_ GUARDED_BY(session_.mutex());
  Dispatcher dispatcher_ GUARDED_BY(session_.mutex());
  WorkerStats stats_ GUARDED_BY(session_.mutex());
  std::vector<Outcome> completed_ GUARDED_BY(session_.mutex());
  // A service thread's run of held outcomes, finished together (finish_run()).
  std::vector<Outcome> run_ GUARDED_BY(session_.mutex());
  CompletionQueue completions_;  // any thread
  // The connection thread's, fired after it lets go of the lock: the
  // runners that got a job while asleep (Dispatcher::take_wakes()).
  std::vector<ServiceRunner*> waking_;
  std::unique_ptr<PeerWatch> peer_watch_;

  // The store of handled message ids (null: it could not be opened, and
  // every delivery is handled at least once), when its records were last
  // synced, and whether some were written since.
  std::unique_ptr<HandledStore> handled_ GUARDED_BY(session_.mutex());
  Clock::time_point next_handled_sync_ GUARDED_BY(session_.mutex()){};
  bool handled_dirty_ GUARDED_BY(session_.mutex()) = false;
  // The records acked before their commit (group commit, handled_commit_ms).
  DeferredRecords deferred_ GUARDED_BY(session_.mutex()){std::chrono::milliseconds(config_.handled_commit_ms)};
  // The keys of the deliveries with a message id that a service runs or
  // has queued, and the deliveries with the same key that wait for it to
  // finish: run once it failed, answered as duplicates once it succeeded.
  struct Parked {
    Job job;
    std::size_t runner;
  };
  std::unordered_map<std::string, std::vector<Parked>> running_ids_ GUARDED_BY(session_.mutex());
};

}  // namespace sbus
