#include <chrono>
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
// was not handled. True when recorded.
bool Worker::remember_handled(const Outcome& outcome) {
  const std::string& key = outcome.envelope.handled_key;
  if (key.empty()) return false;
  const bool handled =
      !outcome.expired && !outcome.leave && !outcome.requeue && !outcome.dead_letter && !outcome.abandoned;
  bool recorded = false;
  if (handled && handled_ != nullptr) {
    recorded =
        handled_->record(key, outcome.envelope.is_call() ? &outcome.body : nullptr, std::chrono::system_clock::now());
    handled_dirty_ = true;
  }
  release_running_id(key, handled ? &outcome : nullptr);
  return recorded;
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
