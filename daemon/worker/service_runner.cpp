#include "worker/service_runner.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <utility>

#include "base/error.hpp"
#include "base/log.hpp"
#include "worker/heap_trim.hpp"
#include "worker/signed_reply.hpp"

namespace sbus {

namespace {

// A call that throws with less than this left of its deadline is answered
// deadline_exceeded, not service_failed: more than the margin the sender
// keeps from an inherited deadline.
constexpr std::chrono::milliseconds kDeadlineSlack{500};

// A quick job's outcome, with more jobs queued, is held (RunnerHost::hold())
// to leave with the run's next complete(): at most kHeldRun of them.
constexpr std::chrono::microseconds kQuick{200};
constexpr std::size_t kHeldRun = 16;

// The id of the delivery a handler runs for, from which the ids of the
// messages it sends are derived (Outbox); empty when it has none.
std::string incoming_message_id(const sbus_request& request) {
  return std::string(request.message_id);
}

}  // namespace

ServiceRunner::ServiceRunner(std::size_t index, ServiceConfig config, LoadedService service,
                             std::unique_ptr<HostContext> context, RunnerHost* host, CrashJournal* journal,
                             int max_retries, std::shared_ptr<CurrentDeadline> current_deadline,
                             std::shared_ptr<Outbox> outbox)
    : index_(index),
      config_(std::move(config)),
      context_(std::move(context)),
      service_(std::move(service)),
      reply_secret_(context_->sender_options().secret),
      host_(host),
      journal_(journal),
      dead_letters_(max_retries),
      current_deadline_(std::move(current_deadline)),
      outbox_(std::move(outbox)),
      budget_(config_.queue_len, config_.queue_bytes) {}

ServiceRunner::~ServiceRunner() {
  stop();
}

void ServiceRunner::start() {
  thread_ = std::thread([this] { run(); });
  std::unique_lock<std::mutex> lock(mutex_);
  started_cv_.wait(lock, [this] { return started_ || !start_error_.empty(); });
  if (!start_error_.empty()) {
    std::string error = start_error_;
    lock.unlock();
    thread_.join();
    throw PluginError("service " + config_.name + ": start failed: " + error);
  }
}

bool ServiceRunner::try_submit(Job& job, bool* wake_later) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!budget_.take(job.bytes)) return false;
    queue_.push_back(std::move(job));
    wake = std::exchange(sleeping_, false);
  }
  // A busy thread finds the job when it is done: no wake-up needed.
  if (wake && wake_later != nullptr) {
    *wake_later = true;
  } else if (wake) {
    wakeup_.fire();
  }
  return true;
}

std::size_t ServiceRunner::queued() {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

std::size_t ServiceRunner::queued_bytes() {
  std::lock_guard<std::mutex> lock(mutex_);
  return budget_.bytes();
}

std::size_t ServiceRunner::discard_queued(std::vector<std::string>* handled_keys, std::vector<std::string>* tokens) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::size_t count = queue_.size();
  for (const Job& job : queue_) {
    if (handled_keys != nullptr && !job.envelope.handled_key.empty()) handled_keys->push_back(job.envelope.handled_key);
    if (tokens != nullptr && !job.event.token.empty()) tokens->push_back(job.event.token);
  }
  queue_.clear();
  budget_.clear();
  return count;
}

void ServiceRunner::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    queue_.clear();
    budget_.clear();
  }
  // Always: the thread may sleep with its wake-up still owed by a caller of
  // try_submit(job, &wake_later). A needless fire costs one system call.
  wakeup_.fire();
  if (thread_.joinable()) thread_.join();
}

std::optional<ServiceRunner::Abandoned> ServiceRunner::abandon_call() {
  return give_up(false);
}

std::optional<ServiceRunner::Abandoned> ServiceRunner::give_up(bool always) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (abandoned_) return std::nullopt;
  // Exchanged under mutex_: a service thread that finds it taken waits for
  // that lock before it lets go of the outcome read here.
  InFlight* in_flight = in_flight_.exchange(nullptr, std::memory_order_acq_rel);
  if (in_flight == nullptr && !always) return std::nullopt;
  abandoned_ = true;
  stopping_ = true;
  queue_.clear();
  if (thread_.joinable()) thread_.detach();
  if (in_flight == nullptr) return std::nullopt;
  Abandoned abandoned;
  abandoned.envelope = in_flight->outcome->envelope;
  abandoned.id = *in_flight->id;
  return abandoned;
}

bool ServiceRunner::stop_by(std::chrono::steady_clock::time_point deadline) {
  if (deadline == std::chrono::steady_clock::time_point::max()) {
    // No deadline: no timed wait (whose arithmetic max() would overflow).
    std::unique_lock<std::mutex> lock(mutex_);
    if (abandoned_) return false;
    lock.unlock();
    stop();
    return true;
  }
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (abandoned_) return false;
    stopping_ = true;
    queue_.clear();
  }
  wakeup_.fire();
  {
    // Even past the deadline, an idle thread gets a moment to end and run
    // the service's stop().
    deadline = std::max(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(1));
    std::unique_lock<std::mutex> lock(mutex_);
    if (!started_cv_.wait_until(lock, deadline, [this] { return finished_ || !thread_.joinable(); })) {
      lock.unlock();
      give_up(true);
      return false;
    }
  }
  stop();
  return true;
}

void ServiceRunner::sleep(std::unique_lock<std::mutex>& lock,
                          std::optional<std::chrono::steady_clock::time_point> deadline) {
  sleeping_ = true;
  lock.unlock();
  bool socket = false;
  if (!deadline) {
    // Idle: with the seat, and no longer than until the heap's trim is due.
    std::optional<std::chrono::nanoseconds> until;
    const auto now = std::chrono::steady_clock::now();
    if (const auto trim = thread_heap_trim().due()) until = *trim - now;
    if (commit_by_) until = std::min(until.value_or(*commit_by_ - now), *commit_by_ - now);
    socket = wakeup_.sleep(host_idle_, until);
    if (commit_by_ && std::chrono::steady_clock::now() >= *commit_by_) {
      commit_by_.reset();
      host_->commit_records();
    }
  } else if (const auto left = *deadline - std::chrono::steady_clock::now(); left.count() > 0) {
    wakeup_.sleep(false, left);
  }
  lock.lock();
  sleeping_ = false;
  if (socket) {
    // Awake now: a job the read hands to this service is queued, not woken for.
    lock.unlock();
    host_idle_ = host_->read_socket();
    lock.lock();
  }
}

void ServiceRunner::run() {
  if (journal_ != nullptr) journal_slot_ = journal_->claim_slot(getpid(), CrashJournal::service_key(config_.name));
  if (std::optional<std::string> failure = service_.start(context_->get())) {
    std::lock_guard<std::mutex> lock(mutex_);
    start_error_ = failure->empty() ? "exception" : *failure;
    started_cv_.notify_all();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    started_ = true;
  }
  started_cv_.notify_all();

  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      while (!stopping_ && queue_.empty()) {
        if (thread_heap_trim().trim_if_due(std::chrono::steady_clock::now())) continue;
        sleep(lock, std::nullopt);
      }
      if (stopping_) break;
      job = std::move(queue_.front());
      queue_.pop_front();
      budget_.give_back(job.bytes);
      running_.store(true, std::memory_order_relaxed);
    }
    Outcome outcome = execute(job);
    const bool large = job.bytes > kLargeBodyBytes || outcome.body.size() > kLargeBodyBytes;
    running_.store(false, std::memory_order_relaxed);
    if (outcome.abandoned) return;  // the worker has moved on: touch nothing of it
    if (hold(outcome, large)) {
      ++held_;
      host_->hold(std::move(outcome));
    } else {
      held_ = 0;
      host_idle_ = host_->complete(std::move(outcome));
    }
    if (large) {
      // What a large call's params and reply took from the heap is free
      // now; pieces of it below live blocks would stay in RSS once the run
      // of large calls is over.
      job = Job{};
      thread_heap_trim().note_large(std::chrono::steady_clock::now());
    }
  }

  if (std::optional<std::string> failure = service_.stop()) {
    SBUS_LOG(kWarn) << log_service(config_.name) << "service " << config_.name << ": stop() threw: " << *failure;
  }
  if (journal_ != nullptr) journal_->release_slot(journal_slot_);
  std::lock_guard<std::mutex> lock(mutex_);
  finished_ = true;
  started_cv_.notify_all();
}

// Whether an outcome waits for the run it belongs to: the job was quick,
// another is queued, and the run is short. A slow job's outcome, or the
// run's last, hands over all of it at once.
bool ServiceRunner::hold(const Outcome& outcome, bool large) {
  if (large || outcome.busy >= kQuick || held_ + 1 >= kHeldRun) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  return !queue_.empty() && !stopping_;
}

// Runs one job in the plugin: a call's reply is encoded here, a message's
// retries and dead letter are run_message()'s.
Outcome ServiceRunner::execute(Job& job) {
  Outcome outcome;
  outcome.envelope = std::move(job.envelope);
  outcome.runner = index_;

  // An event's service is the one it was routed to; its topic, in the
  // body's service element (protocol.md, Events), is the Request's topic.
  const bool is_event = outcome.envelope.is_event();
  const bool is_call = outcome.envelope.is_call();
  sbus_request request;
  request.id = job.event.id;
  request.node = context_->get()->node;
  request.category = is_event ? std::string_view(config_.category) : std::string_view(job.event.category);
  request.service = is_event ? std::string_view(config_.service) : std::string_view(job.event.service);
  if (is_event) request.topic = job.event.service;
  request.caller = outcome.envelope.caller;
  request.params = job.event.params;
  request.deadline = job.deadline;
  request.is_call = is_call;
  Reply reply;
  reply.id = job.event.id;
  request.message_id = outcome.envelope.message_id;
  if (expired_in_queue(job, &reply, &outcome)) return outcome;
  if (journal_ != nullptr) journal_->begin(journal_slot_, outcome.envelope.key);
  // Hashed now, so that marking it returned takes one store (release_held()).
  returned_key_ = journal_ != nullptr && !outcome.envelope.handled_key.empty()
                      ? CrashJournal::service_key(outcome.envelope.handled_key)
                      : 0;
  InFlight in_flight{&outcome, &reply.id};
  in_flight_.store(&in_flight, std::memory_order_release);
  const auto started = std::chrono::steady_clock::now();
  call_service(request, job, &reply, &outcome);
  if (is_call) answer_late(job.deadline, &reply);
  if (in_flight_.exchange(nullptr, std::memory_order_acq_rel) == nullptr) {
    // give_up() took it: wait until it has copied what it needs, then leave
    // the delivery to it (and the journal slot as it is, as a crash would).
    std::lock_guard<std::mutex> lock(mutex_);
    outcome.abandoned = true;
    if (journal_ != nullptr) journal_->clear_mark(outcome.returned_mark, returned_key_);  // give_up() answered it
    return outcome;
  }
  outcome.busy = std::chrono::steady_clock::now() - started;
  if (journal_ != nullptr) journal_->end(journal_slot_);
  outcome.failed = !reply.error_code.empty() || outcome.dead_letter;
  if (!reply.error_code.empty()) {
    // Callers can cause these at will (test.fail, bad params): rate limited.
    SBUS_LOG_LIMITED(kWarn, "error reply")
        << log_service(config_.name) << log_event(reply.id) << "event " << log_value(reply.id) << ": " << config_.name
        << ": " << log_value(reply.error_code) << ": " << log_value(reply.message, 400);
  }
  if (is_call) outcome.body = encode_signed_reply(&reply, outcome.envelope, reply_secret_, context_->get()->node);
  return outcome;
}

// It may have waited in the queue past its deadline: then nobody waits for
// it, and it is not started. A call is answered deadline_exceeded.
bool ServiceRunner::expired_in_queue(const Job& job, Reply* reply, Outcome* outcome) {
  if (!job.deadline || std::chrono::system_clock::now() < *job.deadline) return false;
  const bool is_call = outcome->envelope.is_call();
  outcome->expired = true;
  const std::string message = "the deadline of the " + std::string(is_call ? "call to " : "message to ") +
                              config_.name + " passed while it waited in the service's queue; it was not run";
  SBUS_LOG_LIMITED(kInfo, "expired") << log_service(config_.name) << log_event(reply->id) << "event "
                                     << log_value(reply->id) << ": " << message;
  if (is_call) {
    reply->error_code = errc::kDeadlineExceeded;
    reply->message = message;
    outcome->body = encode_signed_reply(reply, outcome->envelope, reply_secret_, context_->get()->node);
  }
  return true;
}

// The plugin's on_call (its answer into `reply`) or on_message (with its
// retries); an exception becomes service_failed. While a call runs, the
// calls its service makes inherit its deadline (current_deadline_).
void ServiceRunner::call_service(sbus_request& request, Job& job, Reply* reply, Outcome* outcome) {
  const bool is_call = outcome->envelope.is_call();
  if (is_call && current_deadline_ != nullptr) current_deadline_->set(job.deadline);
  // Nothing throws across the C ABI; caught all the same, as a boundary.
  try {
    if (!is_call) {
      run_message(request, job, reply->id, outcome);
    } else {
      answer_call(request, reply, outcome);
    }
  } catch (const std::exception& e) {
    reply->error_code = errc::kServiceFailed;
    reply->message = std::string("service ") + config_.name + " failed: " + e.what();
  } catch (...) {
    reply->error_code = errc::kServiceFailed;
    reply->message = "service " + config_.name + " failed: unknown exception";
  }
  // What a handler that threw had sent never leaves.
  if (outbox_ != nullptr) outbox_->discard();
  if (is_call && current_deadline_ != nullptr) current_deadline_->set(std::nullopt);
}

// The handler has returned: what it sent leaves, and then, the moment it
// has all left (at once when it sent nothing), a delivery with a message id
// is marked returned in the crash journal (docs/reliability.md#handled-once):
// from here on, a kill of this worker does not run it again.
bool ServiceRunner::release_held(Outcome* outcome, std::string* error) {
  Outbox::Released released = outbox_ != nullptr ? outbox_->release() : Outbox::Released{};
  if (released.ok) {
    if (returned_key_ != 0) outcome->returned_mark = journal_->mark_returned(journal_slot_, returned_key_);
    return true;
  }
  *error = std::move(released.error);
  outcome->requeue = released.connection_failed;
  SBUS_LOG_LIMITED(kWarn, "release failed")
      << log_service(config_.name) << config_.name << ": " << log_value(*error)
      << (outcome->requeue ? "; the delivery is not acked, the broker delivers it again" : "");
  return false;
}

bool ServiceRunner::attempt_message(sbus_request& request, Outcome* outcome, std::string* error) {
  if (outbox_ != nullptr) outbox_->open(incoming_message_id(request));
  if (std::optional<std::string> failure = service_.deliver(request, outcome->envelope.is_event())) {
    *error = std::move(*failure);
    if (outbox_ != nullptr) outbox_->discard();
    return false;
  }
  return release_held(outcome, error);
}

// A call: the plugin's answer, sent only once what it sent meanwhile has
// left (release_held); otherwise service_failed.
void ServiceRunner::answer_call(sbus_request& request, Reply* reply, Outcome* outcome) {
  if (outbox_ != nullptr) outbox_->open(incoming_message_id(request));
  std::string error;
  if (std::optional<std::string> failure = service_.call(request)) {
    error = std::move(*failure);
  } else if (release_held(outcome, &error)) {
    reply->error_code = std::move(request.error_code);
    reply->message = std::move(request.body);
    return;
  }
  reply->error_code = errc::kServiceFailed;
  reply->message = "service " + config_.name + " failed: " + error;
}

// Past the deadline, whatever a call answered or threw goes to nobody who
// waits: the hops of a chain see where the budget ran out. So does an
// exception close to it: a call the service made inherited the deadline
// less a margin (SenderOptions::inherited_deadline) and ran out of time.
void ServiceRunner::answer_late(const std::optional<std::chrono::system_clock::time_point>& deadline,
                                Reply* reply) const {
  if (!deadline) return;
  const auto now = std::chrono::system_clock::now();
  const bool threw_near_deadline = reply->error_code == errc::kServiceFailed && now + kDeadlineSlack >= *deadline;
  if (!threw_near_deadline && now < *deadline) return;
  const bool threw = !reply->error_code.empty() && reply->error_code != errc::kDeadlineExceeded;
  reply->error_code = errc::kDeadlineExceeded;
  reply->message = "service " + config_.name + " finished after the call's deadline" +
                   (threw ? ": " + reply->message : std::string());
}

// A message (or an event) is retried, and moved to the error queue once its retries are
// spent, as DeadLetterPolicy decides; between attempts the thread sleeps,
// and a stop meanwhile leaves the message unacked.
void ServiceRunner::run_message(sbus_request& request, Job& job, const std::string& id, Outcome* outcome) {
  for (int attempt = 1;; ++attempt) {
    std::string error;
    if (attempt_message(request, outcome, &error)) break;
    if (outcome->requeue) break;  // the broker is gone: no attempt counted
    SBUS_LOG_LIMITED(kWarn, "message attempt failed")
        << log_service(config_.name) << log_event(id) << "event " << log_value(id) << ": " << config_.name
        << ": attempt " << attempt << " failed: " << log_value(error);
    MessageFate fate = dead_letters_.after_attempt(attempt, config_.name, error);
    if (fate.verdict == MessageFate::Verdict::kDeadLetter) {
      outcome->dead_letter = std::move(fate.entry);
      outcome->body = std::move(job.body);
      outcome->headers = std::move(job.headers);
      break;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    const auto deadline = std::chrono::steady_clock::now() + fate.retry_in;
    while (!stopping_ && std::chrono::steady_clock::now() < deadline) sleep(lock, deadline);
    if (stopping_) {
      outcome->leave = true;  // stopping: unacked, the broker keeps it
      break;
    }
    if (dead_letters_.before_retry(job.deadline, std::chrono::system_clock::now()).verdict ==
        MessageFate::Verdict::kDrop) {
      // Its deadline passed while it failed: not tried again, nor kept.
      SBUS_LOG_LIMITED(kInfo, "expired") << log_service(config_.name) << log_event(id) << "event " << log_value(id)
                                         << ": " << config_.name << ": the message's deadline passed after " << attempt
                                         << " failed attempt(s); dropped";
      outcome->expired = true;
      break;
    }
  }
}

}  // namespace sbus
