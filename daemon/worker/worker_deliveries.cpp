#include "worker/worker_impl.hpp"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "base/audit_log.hpp"
#include "base/log.hpp"
#include "protocol/event_wire.hpp"
#include "worker/hold_stamp.hpp"
#include "worker/node_queues.hpp"
#include "worker/signed_reply.hpp"

// What the worker does with each delivery and outcome.
namespace sbus {

using std::chrono::milliseconds;

namespace {

// An event leaving its queue (for the hold or the error queue) names its
// service, to come back as that service's event (protocol.md, Events). The
// worker drops the x-sbus-* headers a delivery came with: it sets this one
// itself.
Headers event_header(const Envelope& envelope, const std::string& service) {
  if (!envelope.is_event()) return {};
  return {{std::string(kEventServiceHeader), service}};
}

}  // namespace

void Worker::on_delivery(Delivery& delivery) {
  Decision decision = admission_.decide(delivery, session_.unsent());
  carry_out(decision, delivery);
}

// What admission decided, done: the only place a delivery's reply, dead
// letter or job leaves from.
void Worker::carry_out(Decision& decision, const Delivery& delivery) {
  const Envelope& envelope = decision.job.envelope;
  if (decision.counts_as_failed) ++stats_.services[decision.runner].failed;
  if (decision.audit) {
    const Event& event = decision.job.event;
    log_audit_call(envelope.caller, config_.node + "." + event.category + "." + event.service, event.id,
                   envelope.is_call(), decision.code != errc::kForbidden, decision.message);
  }
  switch (decision.verdict) {
    case Decision::Verdict::kPong: answer(envelope, kPongBody, ReplyGuard::Caller::kUnauthenticated); return;
    case Decision::Verdict::kOwnStats: {
      Reply reply{decision.job.event.id, stats_json(), ""};
      answer(envelope, encode_signed_reply(&reply, envelope, config_.secret, config_.node),
             ReplyGuard::Caller::kAuthenticated);
      return;
    }
    case Decision::Verdict::kRefuse: refuse(decision, delivery); return;
    case Decision::Verdict::kAnswerError:
      answer_error(envelope, decision.job.event.id, decision.code, decision.message, decision.caller);
      return;
    case Decision::Verdict::kDeadLetter:
      dead_letter(envelope, delivery.body, delivery.headers,
                  ErrorEntry{decision.service, decision.message, decision.attempts, {}}, delivery.event_service);
      return;
    case Decision::Verdict::kSendKept: {
      const std::string body = session_.unsent().take(envelope.key);
      answer(envelope, body, ReplyGuard::Caller::kAuthenticated);
      return;
    }
    case Decision::Verdict::kExpired:
      ++stats_.services[decision.runner].expired;
      expire(envelope, decision.job.event.id, decision.message);
      return;
    case Decision::Verdict::kDuplicate:
      ++stats_.services[decision.runner].duplicates;
      answer_duplicate(envelope, decision.job.event.id, decision.message, decision.code, decision.message);
      return;
    case Decision::Verdict::kDispatch: dispatch_once(std::move(decision.job), decision.runner); return;
  }
}

// Publishes a reply and marks its delivery for the ack.
void Worker::answer(const Envelope& envelope, std::string_view body, ReplyGuard::Caller caller) {
  if (session_.publish_reply(envelope.reply_to, envelope.correlation_id, body, caller)) {
    session_.settle(envelope.delivery_tag, true);
  }
}

void Worker::answer_error(const Envelope& envelope, const std::string& id, const std::string& code,
                          const std::string& message, ReplyGuard::Caller caller) {
  // Outsiders can send these at will: rate limited, and their values escaped.
  SBUS_LOG_LIMITED(kWarn, "refused message") << log_event(id) << "event " << (id.empty() ? "-" : log_value(id)) << ": "
                                             << code << ": " << log_value(message, 400);
  if (!envelope.is_call()) {
    // A message nobody waits for: reject it (a dead-letter exchange on the
    // queue would keep it).
    session_.settle(envelope.delivery_tag, false);
    return;
  }
  Reply reply{id, message, code};
  answer(envelope, encode_signed_reply(&reply, envelope, config_.secret, config_.node), caller);
}

// A delivery whose deadline passed before it started: a call is answered
// deadline_exceeded (its caller, if still listening, drops it), a message
// is acked unrun: nobody waits for it, so neither rejected nor dead-lettered.
void Worker::expire(const Envelope& envelope, const std::string& id, const std::string& message) {
  SBUS_LOG_LIMITED(kInfo, "expired") << log_event(id) << "event " << (id.empty() ? "-" : log_value(id)) << ": "
                                     << log_value(message, 400);
  if (!envelope.is_call()) {
    session_.settle(envelope.delivery_tag, true);
    return;
  }
  Reply reply{id, message, errc::kDeadlineExceeded};
  answer(envelope, encode_signed_reply(&reply, envelope, config_.secret, config_.node),
         ReplyGuard::Caller::kAuthenticated);
}

// A delivery that cannot be handled: a call gets its error reply, and
// either kind goes to the error queue with the reason (counted in stats),
// so that a sender who got no answer can find out why. One refused for its
// token is marked for `sbus errors requeue`, which must not sign it anew.
void Worker::refuse(const Decision& decision, const Delivery& delivery) {
  const Envelope& envelope = decision.job.envelope;
  const Event& event = decision.job.event;
  // Outsiders can send these at will: rate limited, and their values escaped.
  SBUS_LOG_LIMITED(kWarn, "refused message") << log_service(event.category + "." + event.service) << log_event(event.id)
                                             << "event " << (event.id.empty() ? "-" : log_value(event.id)) << ": "
                                             << decision.code << ": " << log_value(decision.message, 400);
  ++stats_.refused[decision.code];
  if (envelope.is_call()) {
    Reply reply{event.id, decision.message, decision.code};
    if (!session_.publish_reply(envelope.reply_to, envelope.correlation_id,
                                encode_signed_reply(&reply, envelope, config_.secret, config_.node), decision.caller)) {
      return;
    }
  }
  DeadLetterPolicy::Refusal refusal;
  refusal.code = decision.code;
  refusal.message = decision.message;
  if (!event.category.empty() || !event.service.empty()) refusal.service = event.category + "." + event.service;
  refusal.token_refused = decision.token_refused;
  refusal.body_dropped = delivery.too_large > 0;
  if (envelope.is_call()) refusal.reply_to = envelope.reply_to;
  Headers headers = delivery.headers;
  if (delivery.properties != nullptr && envelope.is_call()) headers = text_headers(*delivery.properties);
  dead_letter(envelope, delivery.body, headers, DeadLetterPolicy::refused(refusal), delivery.event_service);
}

// The one place a delivery goes to the error queue from, whoever decided
// it (DeadLetterPolicy): published with `entry`'s headers (and an event's
// `event_service`, to come back as that service's event), then marked for
// the ack.
void Worker::dead_letter(const Envelope& envelope, std::string_view body, const Headers& headers,
                         const ErrorEntry& entry, const std::string& event_service) {
  Headers own = entry.own;
  for (auto& header : event_header(envelope, event_service)) own.push_back(std::move(header));
  if (session_.publish_dead_letter(body, entry.service, entry.reason, entry.attempts, headers, own, {},
                                   envelope.message_id)) {
    session_.settle(envelope.delivery_tag, true);
  }
}

void Worker::dispatch(Job job, std::size_t runner) {
  if (!dispatcher_.submit(job, runner)) overflow(std::move(job), runner);
}

// A job its service has no room for (QueueBudget): a call is answered
// `busy` at once; a message waits in the hold queue, which gives it back to
// the node queue after hold_time. Neither stays in the worker, so a stuck
// service never holds the prefetch window that the other services need.
void Worker::overflow(Job job, std::size_t runner) {
  ServiceRunner& service_runner = dispatcher_.runner(runner);
  const ServiceConfig& service = service_runner.config();
  const Envelope& envelope = job.envelope;
  if (envelope.is_call()) {
    ++stats_.services[runner].refused_busy;
    SBUS_LOG(kDebug) << log_service(service.name) << log_event(job.event.id) << "event " << log_value(job.event.id)
                     << ": " << service.name << " is busy";
    const DeliveryWindow& window = dispatcher_.window();
    Reply reply{job.event.id,
                "service " + service.name + " is busy (" + std::to_string(service_runner.queued()) +
                    " waiting, queue_len " + std::to_string(service.queue_len) + ", queue_bytes " +
                    std::to_string(service.queue_bytes) + "; " + std::to_string(window.held(runner)) + " of " +
                    std::to_string(window.size()) + " deliveries of the worker's window): try again later",
                errc::kBusy};
    answer(envelope, encode_signed_reply(&reply, envelope, config_.secret, config_.node),
           ReplyGuard::Caller::kAuthenticated);
    return;
  }
  ++stats_.services[runner].held;
  SBUS_LOG(kDebug) << log_service(service.name) << log_event(job.event.id) << "event " << log_value(job.event.id)
                   << ": " << service.name << " is busy; message held for " << config_.hold_ms << " ms";
  const std::int64_t now =
      std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  Headers own = event_header(envelope, service.name);
  own.emplace_back("x-sbus-hold", make_hold_stamp(config_.secret, config_.node, job.body, now));
  if (session_.publish_dead_letter(job.body, service.name, "", 0, job.headers, own, hold_queue_name(config_),
                                   envelope.message_id)) {
    session_.settle(envelope.delivery_tag, true);
  }
}

bool Worker::flush_completions(bool* read_owed) {
  *read_owed = completions_.take(&completed_);
  remember_all_handled(completed_);
  for (Outcome& outcome : completed_) finish(outcome);
  completed_.clear();
  commit_deferred_if_due();
  return session_.ok();
}

// Publishes an outcome's reply (or dead letter) and marks its delivery for
// the ack.
void Worker::finish(Outcome& outcome) {
  const Envelope& envelope = outcome.envelope;
  dispatcher_.finished(outcome.runner);
  if (outcome.expired) {
    ++stats_.services[outcome.runner].expired;
  } else if (!outcome.leave && !outcome.requeue) {
    ServiceStats& stats = stats_.services[outcome.runner];
    ++stats.handled;
    if (outcome.failed) ++stats.failed;
    stats.busy += outcome.busy;
    observe_duration(stats, outcome.busy);
  }
  remember_handled(outcome);
  if (!session_.current(envelope)) {
    if (envelope.is_call() && !outcome.dead_letter && !outcome.leave && !outcome.requeue) {
      SBUS_LOG(kWarn) << "delivery " << envelope.delivery_tag
                      << " finished after its connection was lost; its reply is kept for the redelivery";
      session_.unsent().keep(envelope.key, std::move(outcome.body));
    } else {
      SBUS_LOG(kWarn) << "delivery " << envelope.delivery_tag
                      << " finished after its connection was lost; the broker delivers it again";
    }
    return;
  }
  if (outcome.leave) {
    // Left unacked on purpose: the broker gives it to the next consumer.
    session_.leave(envelope.delivery_tag);
    return;
  }
  if (outcome.requeue) {
    // What its handler sent did not all leave: run again, it sends the same
    // message ids (Outbox), and the receivers drop what they already have.
    session_.requeue(envelope.delivery_tag);
    return;
  }
  if (outcome.dead_letter) {
    const ErrorEntry& entry = *outcome.dead_letter;
    SBUS_LOG_LIMITED(kError, "dead letter")
        << log_service(entry.service) << entry.service << ": message failed " << entry.attempts << " times ("
        << log_value(entry.reason) << "); moved to " << config_.error_queue;
    dead_letter(envelope, outcome.body, outcome.headers, entry, entry.service);
    return;
  }
  if (envelope.is_call() && !session_.publish_reply(envelope.reply_to, envelope.correlation_id, outcome.body,
                                                    ReplyGuard::Caller::kAuthenticated)) {
    return;
  }
  session_.settle(envelope.delivery_tag, true);
}

// A service thread hands over an outcome. When the connection thread sleeps
// in epoll_wait() (the session's lock is free), the service thread
// publishes the reply and acks itself: one thread wake-up less per call,
// and the reply out sooner. Otherwise, and for anything but a plain reply
// or ack on a live connection, the outcome waits in the queue for the
// connection thread.
bool Worker::complete(Outcome outcome) {
  if (!session_.try_lock()) {
    completions_.push(std::move(outcome));
    return false;
  }
  completions_.take_outcomes(&run_);
  if (!run_.empty()) {
    run_.push_back(std::move(outcome));
    std::vector<Outcome> left;
    finish_run(&left);
    session_.unlock();
    for (Outcome& theirs : left) completions_.push(std::move(theirs));
    return true;
  }
  if (finish_inline(outcome)) {
    session_.unlock();
    return true;
  }
  session_.unlock();
  completions_.push(std::move(outcome));
  return true;
}

void Worker::hold(Outcome outcome) {
  completions_.hold(std::move(outcome));
}

// The outcomes of a run (run_), as finish_inline() would each, with their
// handled-id records in one transaction and one write for their replies
// and acks. What must be the connection thread's is moved to `left`.
void Worker::finish_run(std::vector<Outcome>* left) {
  const auto here = [this](const Outcome& outcome) REQUIRES(session_.mutex()) {
    return session_.current(outcome.envelope) && !session_.stopping() && !outcome.leave && !outcome.requeue &&
           !outcome.dead_letter && (!outcome.envelope.is_call() || session_.direct_route(outcome.envelope.reply_to));
  };
  const auto theirs = std::stable_partition(run_.begin(), run_.end(), here);
  std::move(theirs, run_.end(), std::back_inserter(*left));
  run_.erase(theirs, run_.end());
  remember_all_handled(run_);
  for (Outcome& outcome : run_) finish(outcome);
  session_.flush_acks();
  if (!deferred_.empty() && !run_.empty()) {
    if (deferred_.due(Clock::now())) {
      commit_deferred();
    } else {
      dispatcher_.runner(run_.back().runner).commit_records_by(deferred_.deadline());
    }
  }
  run_.clear();
  if (session_.needs_turn()) completions_.wake();
}

bool Worker::finish_inline(Outcome& outcome) {
  if (!session_.current(outcome.envelope) || session_.stopping() || outcome.leave || outcome.requeue ||
      outcome.dead_letter) {
    return false;
  }
  // A delivery with an id while more wait for its service: unless its
  // record may wait for the group commit (defer_record()), it joins the
  // connection thread's batch (one LMDB commit for the run, not one each).
  // Alone, it is finished here, at once.
  const bool deferrable = deferred_.enabled() && outcome.returned_mark >= 0 && !deferred_.full();
  if (!outcome.envelope.handled_key.empty() && !deferrable && dispatcher_.runner(outcome.runner).queued() > 0) {
    return false;
  }
  if (outcome.envelope.is_call() && !session_.direct_route(outcome.envelope.reply_to)) {
    return false;  // the quarantine path may block: the connection thread's work
  }
  finish(outcome);
  session_.flush_acks();
  // Its record may wait (defer_record()): committed now, after the reply
  // left, when the deferred ones are due; else by this thread when it is
  // still idle then (commit_records()), should no other call come: the
  // connection thread sleeps on.
  if (!deferred_.empty()) {
    if (deferred_.due(Clock::now())) {
      commit_deferred();
    } else {
      dispatcher_.runner(outcome.runner).commit_records_by(deferred_.deadline());
    }
  }
  // The connection thread must run a turn when the connection failed, or
  // when rabbitmq-c read frames while sending (poll() cannot see those).
  if (session_.needs_turn()) completions_.wake();
  return true;
}

void Worker::commit_records() {
  if (!session_.try_lock()) return;  // the connection thread is awake: its turn commits them
  commit_deferred_if_due();
  session_.unlock();
}

// The service thread that holds the reader seat was woken by the socket. It
// reads what came, as the connection thread would have: a call to its own
// service then starts on this thread without another wake-up. At most one
// batch; the rest, and anything but plain reading, it leaves to the
// connection thread, which must then read until nothing is left: the kernel
// woke only this thread for the data.
bool Worker::read_socket() {
  if (!session_.try_lock()) {
    completions_.owe_read();  // the connection thread is awake: it reads on its next turn
    return false;
  }
  bool drained = false;
  if (session_.ok() && !session_.stopping()) {
    BrokerSession::Read read = BrokerSession::Read::kFrame;
    for (std::size_t n = 0; n < Dispatcher::kWakeBatch && read == BrokerSession::Read::kFrame; ++n) {
      read = session_.read_one(*this);
      if (read == BrokerSession::Read::kFrame && session_.socket_empty()) read = BrokerSession::Read::kNothing;
    }
    if (read == BrokerSession::Read::kLost) session_.lose();
    drained = read == BrokerSession::Read::kNothing;
    session_.flush_acks();  // what the reads answered at once (pings, errors)
  }
  if (!drained) completions_.owe_read();
  thread_local std::vector<ServiceRunner*> wakes;
  if (!dispatcher_.take_wakes(&wakes, socket_fd())) session_.lose();
  session_.unlock();
  Dispatcher::fire(&wakes);
  return true;
}

}  // namespace sbus
