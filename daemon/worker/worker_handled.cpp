#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/log.hpp"
#include "worker/signed_reply.hpp"
#include "worker/worker_impl.hpp"

// Handled once (docs/reliability.md#handled-once): the worker's side of the
// store of handled message ids. Admission finds a delivery whose id was
// handled (Decision::kDuplicate); here the outcome of a delivery with an id
// is recorded in the step that acks it, and a delivery whose id a service
// is running now waits for that run instead of running beside it.
namespace sbus {

namespace {

// Records are synced to disk this often (HandledStore::sync()).
constexpr std::chrono::seconds kHandledSyncInterval{1};

}  // namespace

// A store that cannot be opened is no reason not to serve: the worker
// serves at least once, as without ids, and says why (sbusd --check says it
// too).
void Worker::open_handled_store() {
  try {
    std::string warning;
    handled_ = HandledStore::open(handled_store_options(config_), &warning);
    if (!warning.empty()) SBUS_LOG(kWarn) << warning;
  } catch (const StoreError& e) {
    SBUS_LOG(kError) << e.what() << "; messages with ids are handled at least once, not once, until it can be opened";
    handled_.reset();
  }
  admission_.set_handled_store(handled_.get());
  admission_.set_deferred(&deferred_);
}

void Worker::sync_handled() {
  next_handled_sync_ = Clock::now() + kHandledSyncInterval;
  handled_dirty_ = false;
  if (handled_ != nullptr) handled_->sync(std::chrono::system_clock::now());
}

// The loop's sleep, shortened to the next sync while records wait for it.
int Worker::handled_wait(int wait) const {
  if (!handled_dirty_) return wait;
  const auto until = std::chrono::duration_cast<std::chrono::milliseconds>(next_handled_sync_ - Clock::now()).count();
  const int left = static_cast<int>(std::max<std::int64_t>(until + 1, 0));
  return wait < 0 ? left : std::min(wait, left);
}

// A job with a message id runs unless one with the same key runs or waits
// to run: then it waits for that one's outcome (release_running_id()).
void Worker::dispatch_once(Job job, std::size_t runner) {
  const std::string& key = job.envelope.handled_key;
  if (key.empty()) {
    dispatch(std::move(job), runner);
    return;
  }
  if (auto found = running_ids_.find(key); found != running_ids_.end()) {
    found->second.push_back(Parked{std::move(job), runner});
    return;
  }
  std::string running = key;
  if (dispatcher_.submit(job, runner)) {
    running_ids_.emplace(std::move(running), std::vector<Parked>{});
    return;
  }
  overflow(std::move(job), runner);
}

// The record, in the step that decides the ack (Worker::finish()): a
// delivery with an id that ran to its end (a call answered, an error reply
// included; a message done) is remembered, with a call's reply, before its
// ack or reply leaves, also when its connection is gone, so that the
// broker's redelivery is known. One moved to the error queue, left,
// requeued (what its handler sent not all released) or expired is not: it
// was not handled. One whose return the crash journal marked may be acked
// first (defer_record()). True when recorded or deferred.
bool Worker::remember_handled(Outcome& outcome) {
  const std::string& key = outcome.envelope.handled_key;
  if (key.empty()) return false;
  const bool handled = outcome.handled();
  bool recorded = false;
  if (handled && handled_ != nullptr && outcome.returned_mark != kRecorded) {
    recorded = defer_record(outcome);
    if (!recorded) {
      // Alone, or with the deferred records when some wait: one commit.
      const std::string* reply = outcome.envelope.is_call() ? &outcome.body : nullptr;
      recorded = commit_deferred({HandledStore::Entry{key, reply}}) > 0;
    }
  }
  if (journal_ != nullptr) journal_->clear_mark(outcome.returned_mark, CrashJournal::service_key(key));
  outcome.returned_mark = -1;
  release_running_id(key, handled ? &outcome : nullptr);
  return recorded;
}

// Group commit (docs/reliability.md#handled-once): the record of a
// delivery whose return the crash journal marked waits in deferred_, and
// the delivery is acked and answered at once. Its mark stays set until the
// record is committed, so a kill of the worker meanwhile leaves the key to
// the supervisor's ring of returned keys, as a kill between the return
// and the record does; a copy of it that comes meanwhile is found in
// deferred_ (Admission). False when it must be recorded now: no mark,
// group commit off, or deferred_ full.
bool Worker::defer_record(Outcome& outcome) {
  if (!deferred_.enabled() || outcome.returned_mark < 0 || deferred_.full()) return false;
  DeferredRecords::Entry entry{outcome.envelope.handled_key, {}, outcome.returned_mark};
  if (outcome.envelope.is_call()) {
    entry.record.kind =
        handled_->keeps_reply(outcome.body.size()) ? HandledRecord::Kind::kReply : HandledRecord::Kind::kReplyNotKept;
    if (entry.record.kind == HandledRecord::Kind::kReply) entry.record.reply = outcome.body;
  }
  deferred_.add(std::move(entry), Clock::now());
  outcome.returned_mark = kDeferred;
  return true;
}

// Commits the deferred records with `entries` in one transaction and
// clears the deferred ones' marks (recorded, or logged as not: then they
// are handled at least once, as a record that fails always was). How many
// of `entries` are recorded is not told apart from the deferred ones: the
// count of all.
std::size_t Worker::commit_deferred(std::vector<HandledStore::Entry> entries) {
  std::vector<DeferredRecords::Entry> deferred = deferred_.take();
  if (handled_ == nullptr || (entries.empty() && deferred.empty())) return 0;
  for (const DeferredRecords::Entry& entry : deferred) {
    const bool kept = entry.record.kind == HandledRecord::Kind::kReply;
    entries.push_back({entry.key, kept ? &entry.record.reply : nullptr, entry.record.kind});
  }
  const std::size_t recorded = handled_->record_all(entries, std::chrono::system_clock::now());
  handled_dirty_ = true;
  if (journal_ != nullptr) {
    for (const DeferredRecords::Entry& entry : deferred) {
      journal_->clear_mark(entry.mark, CrashJournal::service_key(entry.key));
    }
  }
  return recorded;
}

void Worker::commit_deferred_if_due() {
  if (deferred_.due(Clock::now())) commit_deferred();
}

// The loop's sleep, shortened to when the deferred records are due.
int Worker::deferred_wait(int wait) const {
  if (deferred_.empty()) return wait;
  const auto until = std::chrono::ceil<std::chrono::milliseconds>(deferred_.deadline() - Clock::now()).count();
  const int left = static_cast<int>(std::max<std::int64_t>(until, 0));
  return wait < 0 ? left : std::min(wait, left);
}

// The records of a run of outcomes, in one transaction of the handled
// store before any of them is finished (finish() acks and answers): one
// commit for the run instead of one each. When all of them may wait
// (defer_record(), while deferred_ has room), finish() defers them;
// otherwise all are committed here, with the deferred records, when that
// makes one commit of two or more. Their crash-journal marks are cleared
// at once, and finish() does not record them again (kRecorded).
void Worker::remember_all_handled(std::vector<Outcome>& outcomes) {
  if (handled_ == nullptr) return;
  std::size_t room = deferred_.enabled() ? DeferredRecords::kCapacity - deferred_.size() : 0;
  std::vector<Outcome*> handled;
  bool commit_now = false;
  for (Outcome& outcome : outcomes) {
    if (outcome.envelope.handled_key.empty() || !outcome.handled()) continue;
    handled.push_back(&outcome);
    if (outcome.returned_mark >= 0 && room > 0) {
      --room;
    } else {
      commit_now = true;
    }
  }
  if (!commit_now || handled.size() + deferred_.size() < 2) return;
  std::vector<HandledStore::Entry> entries;
  for (const Outcome* outcome : handled) {
    entries.push_back({outcome->envelope.handled_key, outcome->envelope.is_call() ? &outcome->body : nullptr});
  }
  commit_deferred(std::move(entries));
  for (Outcome* outcome : handled) {
    if (journal_ != nullptr) {
      journal_->clear_mark(outcome->returned_mark, CrashJournal::service_key(outcome->envelope.handled_key));
    }
    outcome->returned_mark = kRecorded;
  }
}

// The run of `key` ended: handled (`outcome`), the deliveries that waited
// for it are duplicates; not handled (null), the first of them runs and the
// others wait for it. One whose connection is gone is dropped (the broker
// delivers it again), and while the worker stops they stay unacked.
void Worker::release_running_id(const std::string& key, const Outcome* outcome) {
  auto found = running_ids_.find(key);
  if (found == running_ids_.end()) return;
  std::vector<Parked> parked = std::move(found->second);
  running_ids_.erase(found);
  for (Parked& waiting : parked) {
    const Envelope& envelope = waiting.job.envelope;
    if (!session_.current(envelope)) continue;
    if (outcome != nullptr) {
      ++stats_.services[waiting.runner].duplicates;
      answer_duplicate(envelope, waiting.job.event.id, outcome->body, {}, {});
    } else if (session_.stopping()) {
      session_.leave(envelope.delivery_tag);
    } else {
      dispatch_once(std::move(waiting.job), waiting.runner);
    }
  }
}

// A delivery whose id was handled: a message is acked; a call gets the
// reply it got then (`reply`, as sent then: its id and signature are made
// anew for this call), or the error `code` with `message` when none was
// kept.
void Worker::answer_duplicate(const Envelope& envelope, const std::string& id, std::string_view reply,
                              const std::string& code, const std::string& message) {
  if (!envelope.is_call()) {
    session_.settle(envelope.delivery_tag, true);
    return;
  }
  Reply answer_reply{id, message, code};
  DecodeFailure failure;
  if (code.empty() && !decode_reply(reply, &answer_reply, &failure)) {
    answer_reply =
        Reply{id, "the reply kept for this message id cannot be read: " + failure.detail, errc::kReplyNotKept};
  }
  answer_reply.id = id;
  answer_reply.signature.clear();
  answer(envelope, encode_signed_reply(&answer_reply, envelope, config_.secret, config_.node),
         ReplyGuard::Caller::kAuthenticated);
}

}  // namespace sbus
