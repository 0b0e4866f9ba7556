// Admission: what becomes of a delivery, decided before anything is sent.
//
// The reading thread (the connection thread, or a service thread that holds
// the reader seat) hands each delivery it reads to decide(), which returns
// a Decision: answer it (PING, sbus.stats), refuse it with an error code,
// move it to the error queue, send the reply kept for it, or dispatch it to
// a service with its params parsed. decide() publishes, acks and logs
// nothing to the broker; the worker carries the Decision out
// (Worker::carry_out()), so every reply, ack and dead letter of a refused
// delivery leaves from one place. Whether a message is dead-lettered is
// DeadLetterPolicy's to say (dead_letter.hpp).
//
// Not thread-safe: used by whichever thread reads, with the broker
// session's lock held. What it reads of the world besides the delivery is
// the crash journal and the replay cache (shared memory), the session's
// kept replies, and the clocks (the system clock for deadlines).
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/crash_journal.hpp"
#include "base/replay_cache.hpp"
#include "config/config.hpp"
#include "worker/dead_letter.hpp"
#include "worker/deferred_records.hpp"
#include "worker/handled_store.hpp"
#include "worker/access_policy.hpp"
#include "worker/delivery.hpp"
#include "worker/job.hpp"
#include "worker/reply_guard.hpp"
#include "worker/token_check.hpp"
#include "worker/unsent_replies.hpp"

namespace sbus {

struct Decision {
  enum class Verdict {
    kPong,      // PING: PONG at once, to anyone
    kOwnStats,  // sbus.stats: the worker's own answer (stats_json())
    // An error reply to a call, and either kind into the error queue with
    // the reason, so that a sender who got no answer can find out why.
    kRefuse,
    // An error reply to a call (a message is rejected); nothing is kept.
    kAnswerError,
    kDeadLetter,  // a message into the error queue, with the reason (DeadLetterPolicy)
    kSendKept,    // a call redelivered after a lost connection: the reply kept for it
    // Its message id was handled already (HandledStore): a message is acked
    // unrun; a call gets the reply kept for it (`message`, the reply's body
    // as sent then), or, when none was kept, the error `code`.
    kDuplicate,
    kDispatch,  // to service `runner`, with `job`
    // Its deadline has passed: a call is answered `code` (deadline_exceeded),
    // a message is acked unrun; either counted as expired against `runner`.
    kExpired,
  };
  static constexpr std::size_t kNoRunner = static_cast<std::size_t>(-1);

  Verdict verdict = Verdict::kDispatch;
  // The delivery's envelope (moved out of it: the Delivery's is empty
  // afterwards), its decoded event as far as it decoded, its params parsed.
  Job job;
  std::size_t runner = kNoRunner;  // kDispatch; and the service a refusal is counted against
  bool counts_as_failed = false;   // sbus.stats: a failure of `runner`
  // kRefuse, kAnswerError: the reply's code and text. kDeadLetter: the
  // reason (x-sbus-error), for `service`, after `attempts` crashes.
  std::string code;
  std::string message;
  std::string service;
  int attempts = 0;
  // kRefuse: refused for its token (`sbus errors requeue` must not sign it anew).
  bool token_refused = false;
  ReplyGuard::Caller caller = ReplyGuard::Caller::kUnauthenticated;
  // Written to the audit log (audit_log.hpp) when carried out: denied by
  // the policy (code forbidden), or for a service with `audit: true`.
  bool audit = false;
};

class Admission {
 public:
  using Clock = std::chrono::steady_clock;

  // `journal` and `replay` may be null (then no call is known to have been
  // interrupted, and hmac calls are refused).
  Admission(const Config& config, CrashJournal* journal, ReplayCache* replay);

  // The services, as the worker starts them: runner `runner` serves
  // `service` (which must outlive this); a service that could not start is
  // unavailable for `reason`.
  void add_service(std::size_t runner, const ServiceConfig& service);
  void add_unavailable(const std::string& name, const std::string& reason);
  // Which services crashed this sbusd's workers too often lately (the crash
  // journal remembers across worker restarts): they are switched off for a
  // cool-down. Once, after the services are added: a crash of this worker
  // starts a new one, which reads it again.
  void read_crashes();
  // The store of handled message ids, when the worker could open it
  // (null: every delivery is new). It must outlive this.
  void set_handled_store(HandledStore* store) { handled_ = store; }
  // The records acked before their commit, looked up before the store. It
  // must outlive this.
  void set_deferred(const DeferredRecords* deferred) { deferred_ = deferred; }

  // The services whose plugin failed to load or start, with the reason.
  const std::map<std::string, std::string>& unavailable() const { return unavailable_; }

  // Decides what becomes of `delivery`; moves its envelope into the
  // Decision's job. `unsent`: the replies the session kept for redelivered
  // calls.
  Decision decide(Delivery& delivery, const UnsentReplies& unsent);
  // A delivery admitted and given back to the broker unstarted: its token's
  // nonce is let in again (TokenCheck::forget()).
  void given_back(std::string_view token) { tokens_.forget(token); }

 private:
  void decide_service(Delivery& delivery, const UnsentReplies& unsent, std::size_t caller, Decision* decision);
  bool allowed(std::size_t caller, std::size_t runner, const std::string& name, Decision* decision);
  void decide_event(Delivery& delivery, std::size_t caller, Decision* decision);
  void admit_to_runner(Delivery& delivery, const std::string& name, Decision* decision);
  bool started_before(const Envelope& envelope, bool redelivered, const Event& event,
                      const UnsentReplies& unsent) const;
  bool admit_message(const Delivery& delivery, const std::string& name, Decision* decision);
  bool admit_call(const Delivery& delivery, const UnsentReplies& unsent, const std::string& name, Decision* decision);
  bool switched_off(std::size_t runner, Decision* decision);
  bool within_deadline(const Delivery& delivery, const std::string& name, Decision* decision);
  bool read_message_id(const Delivery& delivery, Decision* decision);
  bool handled_before(const std::string& name, Decision* decision);
  std::optional<HandledRecord> returned_before(const std::string& name, const Envelope& envelope);

  const Config& config_;
  CrashJournal* journal_;
  HandledStore* handled_ = nullptr;
  const DeferredRecords* deferred_ = nullptr;
  TokenCheck tokens_;
  DeadLetterPolicy dead_letters_;  // for messages that crashed workers
  AccessPolicy access_;
  std::vector<const ServiceConfig*> services_;            // by runner
  std::unordered_map<std::string, std::size_t> by_name_;  // "category.service"
  std::map<std::string, std::string> unavailable_;
  // Per runner: switched off until then for crashing the worker too often
  // (crash_cooldown.hpp); the epoch when it serves.
  std::vector<Clock::time_point> off_until_;
};

}  // namespace sbus
