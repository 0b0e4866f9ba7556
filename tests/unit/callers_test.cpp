// Who may call what, decided alone: caller identities in hmac-sha256-v2
// tokens (TokenCheck through Admission) and the policy (AccessPolicy), with
// no broker. tests/integration/callers_test.cpp carries the same out on a
// real broker.
#include <sys/mman.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <deque>
#include <string>

#include "base/audit_log.hpp"
#include "protocol/token.hpp"
#include "protocol/wire_codec.hpp"
#include "worker/access_policy.hpp"
#include "worker/hold_stamp.hpp"
#include "worker/admission.hpp"

namespace {

using Verdict = sbus::Decision::Verdict;

constexpr const char* kSecret = "a shared secret of the tests, long enough";
constexpr const char* kBillingKey = "the billing caller's own key, 1";
constexpr const char* kOpsOld = "the ops caller's old key, long enough";
constexpr const char* kOpsNew = "the ops caller's new key, long enough";

sbus::PolicyRule rule(bool allow, std::vector<std::string> callers, std::vector<std::string> services,
                      std::vector<std::string> kinds = {}) {
  sbus::PolicyRule rule;
  rule.allow = allow;
  rule.callers = std::move(callers);
  rule.services = std::move(services);
  rule.kinds = std::move(kinds);
  rule.line = 10;
  return rule;
}

// The example: billing may call math.* and billing.charge, ops*
// everything, and nobody admin.*.
sbus::Config policy_config() {
  sbus::Config config;
  config.path = "sbusd.yaml";
  config.node = "NODE-01";
  config.secret = kSecret;
  config.accept = {"compat", "hmac-sha256-v2"};
  config.callers = {{"billing", {"billing.key"}, {kBillingKey}, 3}, {"ops", {"old", "new"}, {kOpsOld, kOpsNew}, 4}};
  config.has_policy = true;
  config.policy = {rule(true, {"billing"}, {"math.*", "billing.charge"}), rule(true, {"ops*"}, {"*"}),
                   rule(false, {"*"}, {"admin.*"})};
  return config;
}

sbus::ServiceConfig service(const std::string& name, sbus::ServiceKind kind = sbus::ServiceKind::kRpc) {
  sbus::ServiceConfig config;
  config.name = name;
  config.category = name.substr(0, name.find('.'));
  config.service = name.substr(name.find('.') + 1);
  config.kind = kind;
  return config;
}

template <class T>
struct Mapped {
  explicit Mapped(T* mapped) : value(mapped) {}
  ~Mapped() {
    if (value != nullptr) munmap(value, sizeof(T));
  }
  T* value;
};

// math.add (0), admin.reset (1), billing.charge (2, audited), test.record
// (3, messages).
struct Fixture {
  explicit Fixture(sbus::Config c = policy_config()) : config(std::move(c)), admission(config, nullptr, replay.value) {
    charge.audit = true;
    admission.add_service(0, add);
    admission.add_service(1, reset);
    admission.add_service(2, charge);
    admission.add_service(3, record);
    admission.read_crashes();
  }

  std::string body(const std::string& name, const std::string& token, const std::string& id = "event-1") {
    sbus::Event event;
    event.id = id;
    event.category = name.substr(0, name.find('.'));
    event.service = name.substr(name.find('.') + 1);
    event.params = "[1,2]";
    event.token = token;
    return sbus::encode_event(event);
  }
  // A token as a sender signing as `caller` with `key` makes it.
  std::string signed_as(const std::string& caller, const std::string& key, const std::string& name,
                        std::int64_t timestamp = -1, const std::string& node = "NODE-01") {
    const std::string category = name.substr(0, name.find('.'));
    const std::string svc = name.substr(name.find('.') + 1);
    const sbus::SignedCall call{node, "event-1", category, svc, "[1,2]", caller};
    return sbus::make_hmac_v2_token(key, call, nullptr, timestamp);
  }
  sbus::Decision decide(const std::string& body, bool is_call = true) {
    sbus::Delivery delivery;
    delivery.envelope.kind = is_call ? sbus::DeliveryKind::kCall : sbus::DeliveryKind::kMessage;
    delivery.envelope.reply_to = is_call ? "amq.rabbitmq.reply-to.caller" : "";
    delivery.body = bodies.emplace_back(body);
    return admission.decide(delivery, unsent);
  }
  sbus::Decision call_as(const std::string& caller, const std::string& key, const std::string& name,
                         bool is_call = true) {
    return decide(body(name, signed_as(caller, key, name)), is_call);
  }

  std::deque<std::string> bodies;
  sbus::Config config;
  sbus::ServiceConfig add = service("math.add");
  sbus::ServiceConfig reset = service("admin.reset");
  sbus::ServiceConfig charge = service("billing.charge");
  sbus::ServiceConfig record = service("test.record", sbus::ServiceKind::kMessage);
  Mapped<sbus::ReplayCache> replay{sbus::ReplayCache::create(false)};
  sbus::UnsentReplies unsent;
  sbus::Admission admission;
};

}  // namespace

TEST_CASE("A call signed with a caller's own key is let in as that caller and answered with that key", "[callers]") {
  Fixture fixture;
  const sbus::Decision decision = fixture.call_as("billing", kBillingKey, "math.add");
  REQUIRE(decision.verdict == Verdict::kDispatch);
  CHECK(decision.job.envelope.caller == "billing");
  REQUIRE(decision.job.envelope.reply_key != nullptr);
  CHECK(*decision.job.envelope.reply_key == kBillingKey);
  CHECK_FALSE(decision.job.envelope.reply_nonce.empty());
}

TEST_CASE("Whoever signs with the shared secret is the identity py-servicebus", "[callers]") {
  sbus::Config config = policy_config();
  config.policy.push_back(rule(true, {"py-servicebus"}, {"math.*"}));
  Fixture fixture(config);
  SECTION("a compat token") {
    const std::string token = sbus::compat_token(kSecret, sbus::local_date(std::chrono::system_clock::now()));
    const sbus::Decision decision = fixture.decide(fixture.body("math.add", token));
    REQUIRE(decision.verdict == Verdict::kDispatch);
    CHECK(decision.job.envelope.caller == "py-servicebus");
    CHECK(decision.job.envelope.reply_key == nullptr);
  }
  SECTION("an hmac-sha256-v2 token without a caller") {
    const sbus::Decision decision = fixture.call_as("", kSecret, "math.add");
    REQUIRE(decision.verdict == Verdict::kDispatch);
    CHECK(decision.job.envelope.caller == "py-servicebus");
  }
  SECTION("and the policy restricts it like any other caller") {
    const std::string token = sbus::compat_token(kSecret, sbus::local_date(std::chrono::system_clock::now()));
    const sbus::Decision decision = fixture.decide(fixture.body("billing.charge", token));
    CHECK(decision.verdict == Verdict::kAnswerError);
    CHECK(decision.code == sbus::errc::kForbidden);
    CHECK(decision.message.find("caller py-servicebus may not reach billing.charge") != std::string::npos);
  }
}

TEST_CASE("Bad caller tokens are refused with the token codes, never let in", "[callers]") {
  Fixture fixture;
  const auto refused = [&](const std::string& token, const char* code) {
    const sbus::Decision decision = fixture.decide(fixture.body("math.add", token));
    CHECK(decision.verdict == Verdict::kRefuse);
    CHECK(decision.code == code);
    CHECK(decision.token_refused);
    return decision.message;
  };
  SECTION("an unknown caller") {
    CHECK(refused(fixture.signed_as("mallory", kBillingKey, "math.add"), sbus::errc::kInvalidToken)
              .find("unknown caller mallory") != std::string::npos);
  }
  SECTION("a known caller with another caller's key, or the shared secret") {
    refused(fixture.signed_as("billing", kOpsNew, "math.add"), sbus::errc::kInvalidSignature);
    refused(fixture.signed_as("billing", kSecret, "math.add"), sbus::errc::kInvalidSignature);
  }
  SECTION("a caller id with odd characters, or too long") {
    std::string token = fixture.signed_as("billing", kBillingKey, "math.add");
    const std::size_t at = token.find(":billing:");
    refused(std::string(token).replace(at + 1, 7, "bil:ing"), sbus::errc::kInvalidToken);
    refused(std::string(token).replace(at + 1, 7, "bil ing"), sbus::errc::kInvalidToken);
    refused(std::string(token).replace(at + 1, 7, std::string(sbus::kMaxCallerBytes + 1, 'b')),
            sbus::errc::kInvalidToken);
  }
  SECTION("a signature over other fields than the call's: another service, node, or caller") {
    refused(fixture.signed_as("billing", kBillingKey, "math.sub"), sbus::errc::kInvalidSignature);
    refused(fixture.signed_as("billing", kBillingKey, "math.add", -1, "NODE-02"), sbus::errc::kInvalidSignature);
    std::string token = fixture.signed_as("ops", kOpsNew, "math.add");
    refused(token.replace(token.find(":ops:"), 5, ":billing:"), sbus::errc::kInvalidSignature);
  }
  SECTION("a time outside the allowed skew") {
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    refused(fixture.signed_as("billing", kBillingKey, "math.add", now - 3600), sbus::errc::kTokenExpired);
  }
  SECTION("a replay") {
    const std::string body = fixture.body("math.add", fixture.signed_as("billing", kBillingKey, "math.add"));
    CHECK(fixture.decide(body).verdict == Verdict::kDispatch);
    const sbus::Decision again = fixture.decide(body);
    CHECK(again.verdict == Verdict::kRefuse);
    CHECK(again.code == sbus::errc::kReplayed);
  }
}

TEST_CASE("During a rotation either key of a caller is valid, and the reply is signed with the one used", "[callers]") {
  Fixture fixture;
  for (const char* key : {kOpsOld, kOpsNew}) {
    const sbus::Decision decision = fixture.call_as("ops", key, "math.add");
    REQUIRE(decision.verdict == Verdict::kDispatch);
    REQUIRE(decision.job.envelope.reply_key != nullptr);
    CHECK(*decision.job.envelope.reply_key == key);
  }
  sbus::Config rotated = policy_config();
  rotated.callers[1].keys = {kOpsNew};
  Fixture after(rotated);
  CHECK(after.call_as("ops", kOpsOld, "math.add").code == sbus::errc::kInvalidSignature);
  CHECK(after.call_as("ops", kOpsNew, "math.add").verdict == Verdict::kDispatch);
}

TEST_CASE("The policy's matrix: deny wins, globs match, what no rule allows is forbidden", "[callers][policy]") {
  const sbus::Config config = policy_config();
  const auto allowed = [&](const std::string& caller, const std::string& name) {
    return sbus::decide_access(config, caller, name, sbus::DeliveryKind::kCall).allowed;
  };
  CHECK(allowed("billing", "math.add"));
  CHECK(allowed("billing", "billing.charge"));
  CHECK_FALSE(allowed("billing", "billing.refund"));
  CHECK_FALSE(allowed("billing", "admin.reset"));
  CHECK(allowed("ops", "billing.refund"));
  CHECK(allowed("ops-eu", "math.add"));
  CHECK_FALSE(allowed("ops", "admin.reset"));  // the deny after ops' allow of "*" wins
  CHECK_FALSE(allowed("py-servicebus", "math.add"));
  SECTION("no policy: everything is allowed") {
    sbus::Config none = config;
    none.has_policy = false;
    CHECK(sbus::decide_access(none, "anyone", "admin.reset", sbus::DeliveryKind::kCall).allowed);
  }
  SECTION("an empty policy: nothing is") {
    sbus::Config empty = config;
    empty.policy.clear();
    CHECK_FALSE(sbus::decide_access(empty, "ops", "math.add", sbus::DeliveryKind::kCall).allowed);
  }
  SECTION("kinds: a rule for messages says nothing of calls") {
    sbus::Config kinds = config;
    kinds.policy = {rule(true, {"*"}, {"test.?ecord"}, {"message"})};
    CHECK(sbus::decide_access(kinds, "billing", "test.record", sbus::DeliveryKind::kMessage).allowed);
    CHECK_FALSE(sbus::decide_access(kinds, "billing", "test.record", sbus::DeliveryKind::kCall).allowed);
  }
  SECTION("the reason names the rule that denied, or that none allowed") {
    const sbus::AccessVerdict denied = sbus::decide_access(config, "ops", "admin.reset", sbus::DeliveryKind::kCall);
    CHECK(denied.deny_rule == 2);
    CHECK(sbus::denial_reason(config, denied, "ops", "admin.reset") ==
          "caller ops may not reach admin.reset: denied by policy[2] (sbusd.yaml:10)");
    const sbus::AccessVerdict none = sbus::decide_access(config, "billing", "x.y", sbus::DeliveryKind::kCall);
    CHECK(sbus::denial_reason(config, none, "billing", "x.y").ends_with("no rule of the policy allows it"));
  }
}

TEST_CASE("A denied call is answered forbidden unrun and a denied message dead-lettered, both audited",
          "[callers][policy]") {
  Fixture fixture;
  const sbus::Decision call = fixture.call_as("ops", kOpsNew, "admin.reset");
  CHECK(call.verdict == Verdict::kAnswerError);
  CHECK(call.code == sbus::errc::kForbidden);
  CHECK(call.audit);
  CHECK(call.caller == sbus::ReplyGuard::Caller::kAuthenticated);  // the reply is signed
  const sbus::Decision message = fixture.call_as("billing", kBillingKey, "test.record", false);
  CHECK(message.verdict == Verdict::kDeadLetter);
  CHECK(message.code == sbus::errc::kForbidden);
  CHECK(message.message.find("no rule of the policy allows it") != std::string::npos);
  CHECK(message.audit);
  SECTION("an allowed call is audited only for a service marked audit") {
    CHECK_FALSE(fixture.call_as("billing", kBillingKey, "math.add").audit);
    const sbus::Decision charge = fixture.call_as("billing", kBillingKey, "billing.charge");
    CHECK(charge.verdict == Verdict::kDispatch);
    CHECK(charge.audit);
  }
}

TEST_CASE("An audit line holds the caller, address, event id and decision in one greppable form", "[callers]") {
  CHECK(sbus::audit_call_line("billing", "N.math.add", "e-1", true, true, "") ==
        "audit: caller=billing address=N.math.add event=e-1 kind=call decision=allow");
  CHECK(sbus::audit_call_line("ops", "N.admin.reset", "e\n2", false, false, "say \"no\"") ==
        "audit: caller=ops address=N.admin.reset event=e\\x0a2 kind=message decision=deny reason=\"say \\\"no\\\"\"");
}

TEST_CASE("A reload's changes of callers, keys, identity and policy are each an audit line", "[callers][reload]") {
  const sbus::Config before = policy_config();
  sbus::Config after = before;
  CHECK(sbus::access_changes(before, after).empty());
  after.callers[1].keys = {kOpsNew};
  after.callers[1].key_files = {"new"};
  after.callers.erase(after.callers.begin());
  after.callers.push_back({"audit-bot", {"k"}, {"a key of the audit bot"}, 9});
  after.policy.pop_back();
  const std::vector<std::string> lines = sbus::access_changes(before, after);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] ==
        "audit: caller=ops address=- event=- kind=reload decision=keys-changed reason=\"2 key(s) -> 1 "
        "key(s)\"");
  CHECK(lines[1].starts_with("audit: caller=audit-bot address=- event=- kind=reload decision=caller-added"));
  CHECK(lines[2].starts_with("audit: caller=billing address=- event=- kind=reload decision=caller-removed"));
  CHECK(lines[3] ==
        "audit: caller=- address=- event=- kind=reload decision=policy-changed reason=\"3 rule(s) -> 2 "
        "rule(s)\"");
}

TEST_CASE("A message back from the hold queue keeps the caller its token names, and the policy applies again",
          "[callers][policy]") {
  sbus::Config config = policy_config();
  config.hold_ms = 5000;
  Fixture fixture(config);
  const auto held = [&](const std::string& caller, const std::string& key) {
    const std::string body = fixture.body("test.record", fixture.signed_as(caller, key, "test.record"));
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    sbus::Delivery delivery;
    delivery.envelope.kind = sbus::DeliveryKind::kMessage;
    delivery.body = fixture.bodies.emplace_back(body);
    delivery.headers = {{"x-sbus-hold", sbus::make_hold_stamp(kSecret, "NODE-01", body, now)}};
    return fixture.admission.decide(delivery, fixture.unsent);
  };
  const sbus::Decision ops = held("ops", kOpsNew);
  CHECK(ops.verdict == Verdict::kDispatch);
  CHECK(ops.job.envelope.caller == "ops");
  const sbus::Decision billing = held("billing", kBillingKey);
  CHECK(billing.verdict == Verdict::kDeadLetter);
  CHECK(billing.code == sbus::errc::kForbidden);
  CHECK(billing.message.find("caller billing may not reach test.record") != std::string::npos);
  // A caller removed (by a reload) while its message waited in the hold queue.
  const sbus::Decision removed = held("gone", "a key of a caller since removed");
  CHECK(removed.verdict == Verdict::kRefuse);
  CHECK(removed.code == sbus::errc::kInvalidToken);
}

TEST_CASE("The policy judges events as their own kind: a denied event is dead-lettered, others pass",
          "[callers][policy][events]") {
  sbus::Config config = policy_config();
  // billing may publish to the orders events; nobody's message reaches them.
  config.policy = {rule(true, {"billing"}, {"audit.orders"}, {"event"}), rule(true, {"ops*"}, {"*"}, {"call"})};
  CHECK(sbus::decide_access(config, "billing", "audit.orders", sbus::DeliveryKind::kEvent).allowed);
  CHECK_FALSE(sbus::decide_access(config, "billing", "audit.orders", sbus::DeliveryKind::kMessage).allowed);
  CHECK_FALSE(sbus::decide_access(config, "ops", "audit.orders", sbus::DeliveryKind::kEvent).allowed);

  Fixture fixture(config);
  sbus::ServiceConfig orders = service("audit.orders", sbus::ServiceKind::kEvent);
  fixture.admission.add_service(4, orders);
  // An event as sbus publish makes it: category "event", the topic as its
  // service, signed for the events exchange, from the service's own queue.
  const auto publish_as = [&](const std::string& caller, const std::string& key) {
    const sbus::SignedCall call{config.events_exchange, "event-9", "event", "orders.created", "[1,2]", caller};
    sbus::Event event;
    event.id = "event-9";
    event.category = "event";
    event.service = "orders.created";
    event.params = "[1,2]";
    event.token = sbus::make_hmac_v2_token(key, call);
    sbus::Delivery delivery;
    delivery.envelope.kind = sbus::DeliveryKind::kEvent;
    delivery.event_service = "audit.orders";
    delivery.body = fixture.bodies.emplace_back(sbus::encode_event(event));
    return fixture.admission.decide(delivery, fixture.unsent);
  };
  const sbus::Decision allowed = publish_as("billing", kBillingKey);
  CHECK(allowed.verdict == Verdict::kDispatch);
  CHECK(allowed.runner == 4);
  const sbus::Decision denied = publish_as("ops", kOpsNew);
  CHECK(denied.verdict == Verdict::kDeadLetter);
  CHECK(denied.code == sbus::errc::kForbidden);
  CHECK(denied.audit);
}
