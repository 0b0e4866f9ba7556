#include "worker/admission.hpp"

#include <algorithm>
#include <optional>
#include <utility>

#include "base/log.hpp"
#include "protocol/deadline.hpp"
#include "protocol/event_wire.hpp"
#include "protocol/message_id.hpp"
#include "worker/crash_cooldown.hpp"
#include "worker/params.hpp"

namespace sbus {
namespace {

void refuse(Decision* decision, std::string code, std::string message,
            ReplyGuard::Caller caller = ReplyGuard::Caller::kUnauthenticated, bool token_refused = false) {
  decision->verdict = Decision::Verdict::kRefuse;
  decision->code = std::move(code);
  decision->message = std::move(message);
  decision->caller = caller;
  decision->token_refused = token_refused;
}

// A message into the error queue, as DeadLetterPolicy decided.
void dead_letter(Decision* decision, ErrorEntry entry) {
  decision->verdict = Decision::Verdict::kDeadLetter;
  decision->service = std::move(entry.service);
  decision->message = std::move(entry.reason);
  decision->attempts = entry.attempts;
}

// py-servicebus's words first: its senders read the code from them.
std::string cannot_find(bool is_call, const std::string& name) {
  return std::string(is_call ? "Cannot Find RPC Service: " : "Cannot Find Message Service: ") + name;
}

}  // namespace

Admission::Admission(const Config& config, CrashJournal* journal, ReplayCache* replay)
    : config_(config), journal_(journal), tokens_(config, replay), dead_letters_(config.max_retries), access_(config) {}

void Admission::add_service(std::size_t runner, const ServiceConfig& service) {
  if (services_.size() <= runner) services_.resize(runner + 1, nullptr);
  services_[runner] = &service;
  by_name_[service.name] = runner;
  access_.add_service(runner, service.name);
}

void Admission::add_unavailable(const std::string& name, const std::string& reason) {
  unavailable_[name] = reason;
}

void Admission::read_crashes() {
  off_until_.assign(services_.size(), Clock::time_point{});
  if (journal_ == nullptr) return;
  CrashCooldownOptions options;
  options.limit = config_.crash_limit;
  options.cooldown = std::chrono::seconds(config_.crash_cooldown_seconds);
  const auto now = Clock::now();
  for (std::size_t i = 0; i < services_.size(); ++i) {
    const std::string& name = services_[i]->name;
    const std::vector<std::int64_t> crashes = journal_->crash_times(CrashJournal::service_key(name));
    const std::optional<std::int64_t> until = cooldown_until(
        crashes, std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count(), options);
    if (!until) continue;
    off_until_[i] = Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(*until)));
    SBUS_LOG(kError) << log_service(name) << "service " << name << " crashed the worker " << crashes.size()
                     << " time(s) lately: "
                     << "switched off for "
                     << std::chrono::duration_cast<std::chrono::seconds>(off_until_[i] - now).count() + 1
                     << " s (its calls are answered " << errc::kServiceUnavailable << ")";
  }
}

Decision Admission::decide(Delivery& delivery, const UnsentReplies& unsent) {
  Decision decision;
  decision.job.envelope = std::move(delivery.envelope);
  const Envelope& envelope = decision.job.envelope;
  Event& event = decision.job.event;
  if (envelope.is_call() && delivery.body == kPingBody) {
    decision.verdict = Decision::Verdict::kPong;
    return decision;
  }
  if (delivery.too_large > 0) {
    refuse(&decision, errc::kTooLarge,
           "message of " + std::to_string(delivery.too_large) + " bytes is over the limit of " +
               std::to_string(config_.max_message_bytes) + " (body dropped unread)");
    return decision;
  }
  DecodeFailure failure;
  if (!decode_event(delivery.body, &event, &failure)) {
    refuse(&decision, failure.code, failure.detail);
    return decision;
  }
  const char* token_code = nullptr;
  std::string token_message;
  CallerIdentity who;
  const bool held_here = !envelope.is_call() && tokens_.back_from_hold(delivery.body, delivery.headers);
  // An event is signed for the events exchange, not for a node.
  const std::string_view signed_for =
      envelope.is_event() ? std::string_view(config_.events_exchange) : std::string_view();
  const bool admitted =
      held_here ? tokens_.held_caller(event, &who, &token_code, &token_message)
                : tokens_.check(event, started_before(envelope, delivery.redelivered, event, unsent), &token_code,
                                &token_message, &decision.job.envelope.reply_nonce, &who, signed_for);
  if (!admitted) {
    refuse(&decision, token_code, std::move(token_message), ReplyGuard::Caller::kUnauthenticated, true);
    return decision;
  }
  decision.job.envelope.caller = std::move(who.caller);
  decision.job.envelope.reply_key = who.key;
  if (!read_message_id(delivery, &decision)) return decision;
  if (envelope.is_event()) {
    decide_event(delivery, who.index, &decision);
    return decision;
  }
  // The services sbusd answers itself, on the thread that read the call
  // (the connection thread, or an idle seat holder): they answer also while
  // every service thread is busy or stuck.
  if (event.category == kOwnCategory) {
    if (envelope.is_call() && event.service == "stats") {
      SBUS_LOG(kDebug) << "event " << log_value(event.id) << ": " << kOwnCategory << ".stats";
      decision.verdict = Decision::Verdict::kOwnStats;
    } else {
      refuse(&decision, errc::kUnknownService, cannot_find(envelope.is_call(), kOwnCategory + ("." + event.service)),
             ReplyGuard::Caller::kAuthenticated);
    }
    return decision;
  }
  decide_service(delivery, unsent, who.index, &decision);
  return decision;
}

// A delivery with a valid token for a configured service (or not): the
// checks in the order they must run, each ending the delivery's way or
// passing it on.
void Admission::decide_service(Delivery& delivery, const UnsentReplies& unsent, std::size_t caller,
                               Decision* decision) {
  Job& job = decision->job;
  const bool is_call = job.envelope.is_call();
  const std::string name = job.event.category + "." + job.event.service;
  SBUS_LOG(kDebug) << log_service(name) << log_event(job.event.id) << "event " << log_value(job.event.id) << ": "
                   << log_value(name) << (delivery.redelivered ? " (redelivered)" : "") << " reply_to "
                   << log_value(job.envelope.reply_to);
  if (auto down = unavailable_.find(name); down != unavailable_.end()) {
    decision->caller = ReplyGuard::Caller::kAuthenticated;
    if (is_call) {
      decision->verdict = Decision::Verdict::kAnswerError;
      decision->message = name + " is unavailable: " + down->second;
      decision->service = name;
    } else {
      dead_letter(decision, DeadLetterPolicy::service_down(name, "service unavailable: " + down->second).entry);
    }
    decision->code = errc::kServiceUnavailable;
    return;
  }
  auto found = by_name_.find(name);
  const bool kind_matches = found != by_name_.end() &&
                            services_[found->second]->kind == (is_call ? ServiceKind::kRpc : ServiceKind::kMessage);
  if (!kind_matches) {
    std::string message = cannot_find(is_call, name);
    if (found != by_name_.end() && services_[found->second]->kind == ServiceKind::kEvent) {
      message += " (it is an event service: publish to its topics, as `sbus publish` does)";
    } else if (found != by_name_.end()) {
      message += is_call ? " (it is a message service: send to it, as `sbus send` does)"
                         : " (it is an RPC service: call it, as `sbus call` does)";
    }
    refuse(decision, errc::kUnknownService, std::move(message), ReplyGuard::Caller::kAuthenticated);
    return;
  }
  const std::size_t runner = found->second;
  decision->runner = runner;
  decision->caller = ReplyGuard::Caller::kAuthenticated;
  if (!allowed(caller, runner, name, decision)) return;
  if (handled_before(name, decision)) return;
  const bool admitted =
      is_call ? admit_call(delivery, unsent, name, decision) : admit_message(delivery, name, decision);
  if (!admitted) return;
  admit_to_runner(delivery, name, decision);
}

// An event with a valid token, for the event service whose queue it came
// from: as a message to that service, its topic in the body.
void Admission::decide_event(Delivery& delivery, std::size_t caller, Decision* decision) {
  Job& job = decision->job;
  const std::string& name = delivery.event_service;
  SBUS_LOG(kDebug) << "event " << log_value(job.event.id) << ": topic " << log_value(job.event.service) << " for "
                   << log_value(name) << (delivery.redelivered ? " (redelivered)" : "");
  if (job.event.category != kEventCategory) {
    refuse(decision, errc::kMissingElement,
           "an event names the category '" + std::string(kEventCategory) + "' and its topic as the service, not '" +
               job.event.category + "." + job.event.service + "' (docs/protocol.md, Events)",
           ReplyGuard::Caller::kAuthenticated);
    return;
  }
  if (auto down = unavailable_.find(name); down != unavailable_.end()) {
    dead_letter(decision, DeadLetterPolicy::service_down(name, "service unavailable: " + down->second).entry);
    decision->code = errc::kServiceUnavailable;
    decision->caller = ReplyGuard::Caller::kAuthenticated;
    return;
  }
  auto found = by_name_.find(name);
  if (found == by_name_.end() || services_[found->second]->kind != ServiceKind::kEvent) {
    refuse(decision, errc::kUnknownService, "Cannot Find Event Service: " + name, ReplyGuard::Caller::kAuthenticated);
    return;
  }
  decision->runner = found->second;
  decision->caller = ReplyGuard::Caller::kAuthenticated;
  if (!allowed(caller, found->second, name, decision)) return;
  if (handled_before(name, decision)) return;
  if (!admit_message(delivery, name, decision)) return;
  admit_to_runner(delivery, name, decision);
}

// The checks every admitted delivery passes last, for decision->runner.
void Admission::admit_to_runner(Delivery& delivery, const std::string& name, Decision* decision) {
  Job& job = decision->job;
  const bool is_call = job.envelope.is_call();
  const std::size_t runner = decision->runner;
  if (switched_off(runner, decision)) return;
  // After the redelivery checks: a kept reply or `interrupted` says more.
  if (!within_deadline(delivery, name, decision)) return;
  std::size_t document_bytes = 0;
  if (std::string error; !check_params(job.event.params, &error, &document_bytes)) {
    refuse(decision, errc::kInvalidParams, std::move(error), ReplyGuard::Caller::kAuthenticated);
    return;
  }
  if (!is_call) {
    job.body = delivery.body;
    job.headers = std::move(delivery.headers);
  }
  // With the document its plugin's SDK makes of the params when it runs:
  // 1 MB of small numbers become 8 MB of it.
  job.bytes = job.body.size() + job.event.params.size() + document_bytes + job.event.id.size() + job.event.token.size();
  decision->verdict = Decision::Verdict::kDispatch;
}

// The delivery's deadline (protocol/deadline.hpp): one that has passed ends
// it here, unrun (kExpired); a live one, or for a call without one
// default_call_timeout from now, goes with the job. A header that cannot be
// taken as it stands is logged (rate limited: senders cause it) and read by
// the rule; it never refuses the delivery by itself.
bool Admission::within_deadline(const Delivery& delivery, const std::string& name, Decision* decision) {
  Job& job = decision->job;
  const auto now = std::chrono::system_clock::now();
  Deadline deadline =
      read_deadline(delivery.deadline ? std::optional<std::string_view>(*delivery.deadline) : std::nullopt, now,
                    std::chrono::seconds(config_.max_skew_seconds));
  if (!deadline.problem.empty()) {
    SBUS_LOG_LIMITED(kWarn, "deadline header")
        << log_service(name) << log_event(job.event.id) << "event " << log_value(job.event.id) << ": " << name << ": "
        << kDeadlineHeader << ": " << log_value(deadline.problem, 200);
  }
  if (deadline.expired()) {
    const auto late = std::chrono::duration_cast<std::chrono::milliseconds>(now - deadline.at).count();
    SBUS_LOG(kDebug) << log_service(name) << log_event(job.event.id) << "event " << log_value(job.event.id) << ": "
                     << name << ": deadline passed " << late << " ms ago; not run";
    decision->verdict = Decision::Verdict::kExpired;
    decision->code = errc::kDeadlineExceeded;
    decision->message = "the deadline of the " + std::string(job.envelope.is_call() ? "call to " : "message to ") +
                        name + " passed " + std::to_string(late) + " ms before it could start; it was not run";
    decision->service = name;
    return false;
  }
  if (deadline.live()) {
    job.deadline = deadline.at;
  } else if (job.envelope.is_call() && config_.default_call_timeout_ms > 0) {
    job.deadline = now + std::chrono::milliseconds(config_.default_call_timeout_ms);
  }
  return true;
}

// A message that crashed workers more than max_retries times goes to the
// error queue instead of running again.
bool Admission::admit_message(const Delivery& delivery, const std::string& name, Decision* decision) {
  Job& job = decision->job;
  job.envelope.key = CrashJournal::key(job.event.id, job.event.token, job.event.params);
  const int crashes = delivery.redelivered && journal_ != nullptr ? journal_->interruptions(job.envelope.key) : 0;
  MessageFate fate = dead_letters_.after_crashes(crashes, name);
  if (fate.verdict != MessageFate::Verdict::kDeadLetter) return true;
  SBUS_LOG(kError) << log_service(name) << log_event(job.event.id) << "event " << log_value(job.event.id) << ": "
                   << name << " crashed the worker " << crashes << " times; moving it to " << config_.error_queue;
  dead_letter(decision, std::move(fate.entry));
  return false;
}

// A redelivered call: the reply kept for it, or `interrupted` when a dead
// worker started it. Messages run again after a crash (at least once);
// calls do not, unless the service is idempotent (and then at most
// max_retries times).
bool Admission::admit_call(const Delivery& delivery, const UnsentReplies& unsent, const std::string& name,
                           Decision* decision) {
  Job& job = decision->job;
  job.envelope.key = CrashJournal::key(job.envelope.reply_to, job.envelope.correlation_id, job.event.id);
  if (!delivery.redelivered) return true;
  // A call that finished while the connection was down: its reply now.
  if (unsent.find(job.envelope.key) != nullptr) {
    SBUS_LOG(kInfo) << "event " << log_value(job.event.id)
                    << ": redelivered after a lost connection; sending the reply kept for it";
    decision->verdict = Decision::Verdict::kSendKept;
    return false;
  }
  const bool run_again = services_[decision->runner]->idempotent &&
                         (journal_ == nullptr || journal_->interruptions(job.envelope.key) <= config_.max_retries);
  if (run_again || journal_ == nullptr || !journal_->started_elsewhere(job.envelope.key)) return true;
  decision->verdict = Decision::Verdict::kAnswerError;
  decision->code = errc::kInterrupted;
  decision->message = "the call to " + name +
                      " was interrupted: the worker running it died or lost its broker connection;"
                      " it is not run again";
  return false;
}

// The delivery's message id, if it has one: one that is too long or not
// text is refused (to the error queue, with the reason), after its token
// was checked, so that only a sender who may call hears why.
bool Admission::read_message_id(const Delivery& delivery, Decision* decision) {
  if (delivery.properties == nullptr || (delivery.properties->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) == 0) return true;
  const amqp_bytes_t& bytes = delivery.properties->message_id;
  std::string id(static_cast<const char*>(bytes.bytes), bytes.len);
  if (std::string problem = message_id_problem(id); !problem.empty()) {
    refuse(decision, errc::kBadMessageId, std::move(problem), ReplyGuard::Caller::kAuthenticated);
    return false;
  }
  decision->job.envelope.message_id = std::move(id);
  return true;
}

// A delivery whose message id this node handled for the same service and
// caller (HandledStore): not run again. Checked before the redelivery
// checks, since a kept reply says more than `interrupted`.
bool Admission::handled_before(const std::string& name, Decision* decision) {
  Envelope& envelope = decision->job.envelope;
  if (handled_ == nullptr || envelope.message_id.empty()) return false;
  envelope.handled_key = HandledStore::key(name, envelope.caller, envelope.message_id);
  std::optional<HandledRecord> record;
  if (deferred_ != nullptr && !deferred_->empty()) record = deferred_->find(envelope.handled_key);
  if (!record) record = handled_->find(envelope.handled_key);
  if (!record) record = returned_before(name, envelope);
  if (!record) return false;
  SBUS_LOG(kDebug) << log_service(name) << log_event(decision->job.event.id) << "event "
                   << log_value(decision->job.event.id) << ": message id " << log_value(envelope.message_id)
                   << " was handled already; not run again";
  decision->verdict = Decision::Verdict::kDuplicate;
  decision->service = name;
  if (record->kind == HandledRecord::Kind::kReply) decision->message = std::move(record->reply);
  if (record->kind == HandledRecord::Kind::kReplyLost) {
    decision->code = errc::kReplyNotKept;
    decision->message = "the call to " + name + " with message id " + envelope.message_id +
                        " was handled already and is not run again; its reply was lost with the worker that ran it"
                        " (killed before the reply was kept)";
  }
  if (record->kind == HandledRecord::Kind::kReplyNotKept) {
    decision->code = errc::kReplyNotKept;
    decision->message = "the call to " + name + " with message id " + envelope.message_id +
                        " was handled already and is not run again; its reply was over handled_reply_max_bytes (" +
                        std::to_string(config_.handled_reply_max_bytes) + ") and was not kept";
  }
  return true;
}

// A delivery whose handler had returned in a worker killed before the id
// was recorded (CrashJournal::returned()): handled, so recorded now and not
// run again. Its redelivery, and also a copy the sender published again
// (not marked redelivered). A call's reply went with that worker.
std::optional<HandledRecord> Admission::returned_before(const std::string& name, const Envelope& envelope) {
  if (journal_ == nullptr || envelope.handled_key.empty() ||
      !journal_->returned(CrashJournal::service_key(envelope.handled_key))) {
    return std::nullopt;
  }
  SBUS_LOG(kInfo) << log_service(name) << "message id " << log_value(envelope.message_id) << " to " << name
                  << ": its handler had returned in a worker killed before the id was recorded; not run again";
  HandledRecord record;
  record.kind = envelope.is_call() ? HandledRecord::Kind::kReplyLost : HandledRecord::Kind::kMessage;
  handled_->record(envelope.handled_key, record.kind, nullptr, std::chrono::system_clock::now());
  return record;
}

// A delivery for a service switched off: a call is answered at once, a
// message goes to the error queue with the reason. True when refused.
bool Admission::switched_off(std::size_t runner, Decision* decision) {
  if (runner >= off_until_.size()) return false;
  const Clock::time_point until = off_until_[runner];
  if (until == Clock::time_point{}) return false;
  const std::string& name = services_[runner]->name;
  const auto now = Clock::now();
  if (now >= until) {
    off_until_[runner] = Clock::time_point{};
    SBUS_LOG(kInfo) << log_service(name) << "service " << name << " is switched on again after its cool-down";
    return false;
  }
  std::string message = "service " + name + " is switched off for " +
                        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(until - now).count() + 1) +
                        " s: it crashed the worker " + std::to_string(config_.crash_limit) + " times within " +
                        std::to_string(config_.crash_cooldown_seconds) + " s";
  if (decision->job.envelope.is_call()) {
    decision->verdict = Decision::Verdict::kAnswerError;
    decision->message = std::move(message);
    decision->service = name;
  } else {
    dead_letter(decision, DeadLetterPolicy::service_down(name, std::move(message)).entry);
  }
  decision->code = errc::kServiceUnavailable;
  decision->counts_as_failed = true;
  return true;
}

// The policy (access_policy.hpp): a denied call is answered `forbidden`, a
// denied message goes to the error queue with the reason; either is
// audited, as is everything a service with `audit: true` is sent.
bool Admission::allowed(std::size_t caller, std::size_t runner, const std::string& name, Decision* decision) {
  const bool is_call = decision->job.envelope.is_call();
  const AccessVerdict& verdict = access_.verdict(caller, runner, decision->job.envelope.kind);
  decision->audit = services_[runner]->audit;
  if (verdict.allowed) return true;
  decision->audit = true;
  decision->verdict = is_call ? Decision::Verdict::kAnswerError : Decision::Verdict::kDeadLetter;
  decision->code = errc::kForbidden;
  decision->message = denial_reason(config_, verdict, decision->job.envelope.caller, name);
  decision->service = name;
  return false;
}

// A redelivery of a delivery this node has started (the crash journal knows
// it) or finished (its reply is kept): its nonce was seen, by this very
// delivery, so it is no replay; what it gets is decided as for any
// redelivery (interrupted, run again, the kept reply). A replayed copy
// published by someone else is a new delivery (not redelivered), and one
// that shares the key is answered just as harmlessly.
bool Admission::started_before(const Envelope& envelope, bool redelivered, const Event& event,
                               const UnsentReplies& unsent) const {
  if (!redelivered) return false;
  if (!envelope.is_call()) {
    return journal_ != nullptr && journal_->interruptions(CrashJournal::key(event.id, event.token, event.params)) > 0;
  }
  const std::uint64_t key = CrashJournal::key(envelope.reply_to, envelope.correlation_id, event.id);
  return unsent.find(key) != nullptr || (journal_ != nullptr && journal_->started_elsewhere(key));
}

}  // namespace sbus
