// One configured service: its object, its thread and its bounded queue.
//
// The connection thread submits jobs with try_submit(), which never blocks;
// the service thread runs them one at a time and hands each outcome to its
// RunnerHost. A job whose deadline has passed when its turn comes is not
// run (Outcome::expired); a call answered, or failed, after its deadline is
// answered deadline_exceeded. Exceptions from the plugin become error replies; they
// never leave the thread.
//
// The worker may also seat one runner as the reader of the broker socket
// (watch_socket()): while its thread is idle it then sleeps on the socket
// too, and reads the next delivery itself through RunnerHost::read_socket().
// A call for this service then costs one thread wake-up, not two.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <climits>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "base/crash_journal.hpp"
#include "config/config.hpp"
#include "worker/dead_letter.hpp"
#include "worker/job.hpp"
#include "worker/outbox.hpp"
#include "worker/plugin_host.hpp"
#include "worker/plugin_loader.hpp"
#include "worker/queue_budget.hpp"
#include "worker/wakeup.hpp"

namespace sbus {

// What a service thread needs of the worker that runs it. Called on the
// service thread, with none of the runner's locks held.
class RunnerHost {
 public:
  virtual ~RunnerHost() = default;
  // Hands over an outcome. True when the connection thread was found
  // asleep (and the worker finished the outcome on this thread at once).
  virtual bool complete(Outcome outcome) = 0;
  // Hands over an outcome to leave with the next one complete() hands over
  // (the runner has more jobs queued): one write for their replies and one
  // ack for their deliveries. It waits at most CompletionQueue::kHeldFor.
  virtual void hold(Outcome outcome) = 0;
  // The runner holds the reader seat and the socket has new data. True when
  // the connection thread was found asleep, as above.
  virtual bool read_socket() = 0;
  // The handled-id records this thread acked before their commit are due
  // (ServiceRunner::commit_records_by()): committed, unless the connection
  // thread is awake (then it commits them).
  virtual void commit_records() = 0;
};

// The deadline of the call a service thread is running, for the calls its
// service makes meanwhile (SenderOptions::inherited_deadline): the service
// thread sets it around each call, any thread reads it. Shared by the
// runner and the service's sender options, so that the function stays valid
// as long as either lives.
class CurrentDeadline {
 public:
  using TimePoint = std::chrono::system_clock::time_point;
  void set(std::optional<TimePoint> at) {
    ms_.store(at ? std::chrono::duration_cast<std::chrono::milliseconds>(at->time_since_epoch()).count() : kNone,
              std::memory_order_release);
  }
  std::optional<TimePoint> get() const {
    const std::int64_t ms = ms_.load(std::memory_order_acquire);
    if (ms == kNone) return std::nullopt;
    return TimePoint(std::chrono::milliseconds(ms));
  }

 private:
  static constexpr std::int64_t kNone = INT64_MIN;
  std::atomic<std::int64_t> ms_{kNone};
};

class ServiceRunner {
 public:
  ServiceRunner(std::size_t index, ServiceConfig config, LoadedService service, std::unique_ptr<HostContext> context,
                RunnerHost* host, CrashJournal* journal, int max_retries,
                std::shared_ptr<CurrentDeadline> current_deadline = nullptr, std::shared_ptr<Outbox> outbox = nullptr);
  ~ServiceRunner();
  ServiceRunner(const ServiceRunner&) = delete;
  ServiceRunner& operator=(const ServiceRunner&) = delete;

  // Starts the thread and runs the service's start() on it; throws
  // PluginError when start() throws.
  void start();

  // False when the queue is full: queue_len jobs, or queue_bytes that
  // job.bytes would pass (QueueBudget); the job is untouched. When the service
  // thread sleeps, it is woken now; or, given `wake_later`, *wake_later is
  // set and the caller calls wake() once it has let go of its own lock, so
  // that the service thread does not find that lock held.
  bool try_submit(Job& job, bool* wake_later = nullptr);
  void wake() { wakeup_.fire(); }

  // Any thread (the worker, under its own lock): seats this runner as the
  // reader of the broker socket `fd`, or unseats it. False when the kernel
  // refuses; the runner is then not seated.
  bool watch_socket(int fd) { return wakeup_.watch(fd); }
  void unwatch_socket(int fd) { wakeup_.unwatch(fd); }

  // Drops the jobs not yet started and returns how many; the one running
  // finishes and reports as usual. Adds the handled-store keys of the
  // dropped jobs that have one to `handled_keys`, and their tokens to
  // `tokens`, when given.
  std::size_t discard_queued(std::vector<std::string>* handled_keys = nullptr,
                             std::vector<std::string>* tokens = nullptr);

  // Ends the thread after the running job (queued ones are dropped) and
  // runs the service's stop().
  void stop();

  // The call or message a runner was running when it was abandoned.
  struct Abandoned {
    Envelope envelope;
    std::string id;  // the event's
  };

  // When a delivery is in the plugin right now: gives up on the thread
  // and returns what it runs. The thread is detached and never joined, and
  // whatever it returns from the plugin later is dropped (nor is stop()
  // called, nor its journal slot cleared: a process that exits now leaves
  // the running delivery in the crash journal, as a crash does). For a
  // worker that must exit although a service is stuck; the runner must then
  // outlive the process (never destroy it). Nothing running: nullopt, and
  // the runner stays as it is.
  std::optional<Abandoned> abandon_call();

  // stop(), unless the thread is still busy at `deadline` (or 1 s from now,
  // whichever is later): then it is given up on as by abandon_call(), and
  // false. Also false for a runner already given up on.
  bool stop_by(std::chrono::steady_clock::time_point deadline);

  const ServiceConfig& config() const { return config_; }
  // The version its plugin states (SBUS_PLUGIN_VERSION); empty when none.
  const std::string& plugin_version() const { return service_.version(); }

  // For sbus.stats: the jobs waiting in its queue, and whether one runs now.
  std::size_t queued();
  std::size_t queued_bytes();
  bool running() const { return running_.load(std::memory_order_relaxed); }

  // The service thread, on itself: the handled-id records its outcomes
  // left waiting (the worker's group commit) are due at `when`; an idle
  // sleep ends then, and the thread asks the host to commit them, so that
  // the connection thread need not be woken for them.
  void commit_records_by(std::chrono::steady_clock::time_point when) { commit_by_ = when; }

 private:
  void run();
  Outcome execute(Job& job);
  bool hold(const Outcome& outcome, bool large);
  // The parts of execute(), in the order it runs them.
  bool expired_in_queue(const Job& job, Reply* reply, Outcome* outcome);
  void call_service(sbus_request& request, Job& job, Reply* reply, Outcome* outcome);
  void answer_late(const std::optional<std::chrono::system_clock::time_point>& deadline, Reply* reply) const;
  void run_message(sbus_request& request, Job& job, const std::string& id, Outcome* outcome);
  // One attempt of a message or an event: the handler, then the release
  // of what it sent. False with *error set when either failed; a release
  // that lost the broker also sets outcome->requeue.
  bool attempt_message(sbus_request& request, Outcome* outcome, std::string* error);
  // A call's handler, then the release of what it sent, into *reply.
  void answer_call(sbus_request& request, Reply* reply, Outcome* outcome);
  // Releases what the handler sent (the outbox): true when all of it left,
  // or nothing was held.
  bool release_held(Outcome* outcome, std::string* error);
  // abandon_call(), or with `always` also a thread that runs no delivery.
  std::optional<Abandoned> give_up(bool always);
  // With `lock` (on mutex_) held: releases it while the thread sleeps
  // until try_submit() or stop() wakes it, or until `deadline`. An idle
  // sleep (no deadline) also serves the socket, when seated.
  void sleep(std::unique_lock<std::mutex>& lock, std::optional<std::chrono::steady_clock::time_point> deadline);

  std::size_t index_;
  ServiceConfig config_;
  // Declared before the service: its senders are closed after destroy().
  std::unique_ptr<HostContext> context_;
  LoadedService service_;
  // The config's secret, as the context's sender has it: hmac-sha256-v2
  // answers are signed with it.
  std::string reply_secret_;
  RunnerHost* host_;
  CrashJournal* journal_;          // may be null
  DeadLetterPolicy dead_letters_;  // a message's retries
  int journal_slot_ = -1;
  // The service thread's: CrashJournal::service_key() of the running
  // delivery's handled-store key, 0 when it has none.
  std::uint64_t returned_key_ = 0;
  // Set around each call (may be null: then nobody reads it).
  std::shared_ptr<CurrentDeadline> current_deadline_;
  // What the service sends while a handler runs (may be null: nothing is
  // held). Opened and released on the service thread around each attempt.
  std::shared_ptr<Outbox> outbox_;

  std::mutex mutex_;
  // start() waits on it for the service's start(), stop_by() for the end
  // of run().
  std::condition_variable started_cv_;
  std::deque<Job> queue_;
  QueueBudget budget_;
  bool sleeping_ = false;  // the thread sleeps on wakeup_, or is about to
  Wakeup wakeup_;
  // The connection thread was asleep when this thread last handed it
  // something: then an idle sleep watches the socket. While the connection
  // thread is busy it reads anyway, and a seat holder woken for the data
  // would find the worker's lock taken and sleep again for nothing.
  bool host_idle_ = true;  // the service thread's own
  std::size_t held_ = 0;   // outcomes held since the last complete(): the service thread's own
  std::optional<std::chrono::steady_clock::time_point> commit_by_;  // the service thread's own
  bool stopping_ = false;
  bool started_ = false;
  bool finished_ = false;  // run() has returned, or is about to
  bool abandoned_ = false;
  // The delivery in the plugin right now, for give_up(): set by the service
  // thread around each job, taken by whichever of the two threads exchanges
  // it for null first.
  struct InFlight {
    const Outcome* outcome;
    const std::string* id;
  };
  std::atomic<InFlight*> in_flight_{nullptr};
  std::atomic<bool> running_{false};
  std::string start_error_;
  std::thread thread_;
};

}  // namespace sbus
