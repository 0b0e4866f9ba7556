// Admission, alone: what becomes of a delivery is decided with no broker,
// from the delivery, the config and the services. (The same decisions,
// carried out on a real broker, are tests/integration/admission_test.cpp.)
#include "worker/admission.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <deque>
#include <filesystem>
#include <memory>
#include <string>

#include "protocol/token.hpp"
#include "protocol/wire_codec.hpp"

namespace {

using Verdict = sbus::Decision::Verdict;

constexpr const char* kSecret = "a shared secret of the tests, long enough";

sbus::Config test_config() {
  sbus::Config config;
  config.node = "NODE-01";
  config.secret = kSecret;
  config.accept = {"compat", "hmac-sha256", "hmac-sha256-v2"};
  config.error_queue = "NODE-01.error";
  return config;
}

sbus::ServiceConfig service(const std::string& category, const std::string& name, sbus::ServiceKind kind) {
  sbus::ServiceConfig config;
  config.category = category;
  config.service = name;
  config.name = category + "." + name;
  config.kind = kind;
  return config;
}

std::string event_body(const std::string& category, const std::string& name, const std::string& params,
                       std::string token = {}) {
  sbus::Event event;
  event.id = "event-1";
  event.category = category;
  event.service = name;
  event.params = params;
  event.token = token.empty() ? sbus::compat_token(kSecret, sbus::local_date(std::chrono::system_clock::now()))
                              : std::move(token);
  return sbus::encode_event(event);
}

// The shared-memory structures, as the supervisor maps them; unmapped after.
template <class T>
struct Mapped {
  explicit Mapped(T* mapped) : value(mapped) {}
  ~Mapped() {
    if (value != nullptr) munmap(value, sizeof(T));
  }
  T* value;
};

// An Admission over math.add (runner 0, RPC), test.record (runner 1,
// messages) and broken.svc, whose plugin failed to start.
struct Fixture {
  explicit Fixture(sbus::CrashJournal* journal = nullptr) : admission(config, journal, replay.value) {
    admission.add_service(0, add);
    admission.add_service(1, record);
    admission.add_unavailable("broken.svc", "start failed: no database");
    admission.read_crashes();
  }
  sbus::Decision decide(sbus::Delivery delivery) { return admission.decide(delivery, unsent); }

  // A delivery of `body`, which the fixture keeps (a Delivery's body is a
  // view, as of the reader's buffer).
  sbus::Delivery call(std::string body) {
    sbus::Delivery delivery;
    delivery.envelope.kind = sbus::DeliveryKind::kCall;
    delivery.envelope.generation = 3;
    delivery.envelope.delivery_tag = 17;
    delivery.envelope.reply_to = "amq.rabbitmq.reply-to.caller";
    delivery.envelope.correlation_id = "c-1";
    delivery.body = bodies.emplace_back(std::move(body));
    return delivery;
  }
  sbus::Delivery message(std::string body) {
    sbus::Delivery delivery;
    delivery.envelope.delivery_tag = 18;
    delivery.body = bodies.emplace_back(std::move(body));
    delivery.headers = {{"origin", "test"}};
    return delivery;
  }

  std::deque<std::string> bodies;

  sbus::Config config = test_config();
  sbus::ServiceConfig add = service("math", "add", sbus::ServiceKind::kRpc);
  sbus::ServiceConfig record = service("test", "record", sbus::ServiceKind::kMessage);
  Mapped<sbus::ReplayCache> replay{sbus::ReplayCache::create(false)};
  sbus::UnsentReplies unsent;
  sbus::Admission admission;
};

}  // namespace

TEST_CASE("admission answers PING itself, to anyone", "[admission]") {
  Fixture fixture;
  const sbus::Decision decision = fixture.decide(fixture.call(std::string(sbus::kPingBody)));
  CHECK(decision.verdict == Verdict::kPong);
  CHECK(decision.job.envelope.reply_to == "amq.rabbitmq.reply-to.caller");
}

TEST_CASE("admission refuses what it cannot read, before any service sees it", "[admission]") {
  Fixture fixture;
  SECTION("a body over max_message_bytes, dropped unread") {
    sbus::Delivery delivery = fixture.call("");
    delivery.too_large = 5 * 1024 * 1024;
    const sbus::Decision decision = fixture.decide(std::move(delivery));
    CHECK(decision.verdict == Verdict::kRefuse);
    CHECK(decision.code == sbus::errc::kTooLarge);
    CHECK(decision.message.find("5242880 bytes") != std::string::npos);
  }
  SECTION("a body that is not an event") {
    const sbus::Decision decision = fixture.decide(fixture.call("<not an event"));
    CHECK(decision.verdict == Verdict::kRefuse);
    CHECK(decision.code == sbus::errc::kMalformedXml);
    CHECK(decision.caller == sbus::ReplyGuard::Caller::kUnauthenticated);
  }
  SECTION("a token that is not valid, marked as refused for its token") {
    const sbus::Decision decision = fixture.decide(fixture.call(event_body("math", "add", "[1,2]", "not-a-token")));
    CHECK(decision.verdict == Verdict::kRefuse);
    CHECK(decision.code == sbus::errc::kInvalidToken);
    CHECK(decision.token_refused);
    CHECK(decision.caller == sbus::ReplyGuard::Caller::kUnauthenticated);
  }
  SECTION("params that are not JSON, or nested too deep") {
    const std::string deep = std::string(100, '[') + std::string(100, ']');
    for (const std::string& params : {std::string("[1,"), deep}) {
      const sbus::Decision decision = fixture.decide(fixture.call(event_body("math", "add", params)));
      CHECK(decision.verdict == Verdict::kRefuse);
      CHECK(decision.code == sbus::errc::kInvalidParams);
      CHECK(decision.caller == sbus::ReplyGuard::Caller::kAuthenticated);
    }
  }
}

TEST_CASE("admission answers sbus.stats itself and refuses other sbus services", "[admission]") {
  Fixture fixture;
  CHECK(fixture.decide(fixture.call(event_body("sbus", "stats", "[]"))).verdict == Verdict::kOwnStats);
  const sbus::Decision other = fixture.decide(fixture.call(event_body("sbus", "reboot", "[]")));
  CHECK(other.verdict == Verdict::kRefuse);
  CHECK(other.code == sbus::errc::kUnknownService);
  CHECK(other.message == "Cannot Find RPC Service: sbus.reboot");
  // A message to sbus.stats: nothing answers messages there.
  CHECK(fixture.decide(fixture.message(event_body("sbus", "stats", "[]"))).code == sbus::errc::kUnknownService);
}

TEST_CASE("admission refuses a service that is not configured, or of the other kind", "[admission]") {
  Fixture fixture;
  const sbus::Decision unknown = fixture.decide(fixture.call(event_body("math", "nope", "[]")));
  CHECK(unknown.verdict == Verdict::kRefuse);
  CHECK(unknown.code == sbus::errc::kUnknownService);
  CHECK(unknown.message == "Cannot Find RPC Service: math.nope");
  const sbus::Decision call_to_messages = fixture.decide(fixture.call(event_body("test", "record", "{}")));
  CHECK(call_to_messages.code == sbus::errc::kUnknownService);
  CHECK(call_to_messages.message ==
        "Cannot Find RPC Service: test.record (it is a message service: send to it, as `sbus send` does)");
  const sbus::Decision message_to_rpc = fixture.decide(fixture.message(event_body("math", "add", "[1]")));
  CHECK(message_to_rpc.code == sbus::errc::kUnknownService);
  CHECK(message_to_rpc.message ==
        "Cannot Find Message Service: math.add (it is an RPC service: call it, as `sbus call` does)");
}

TEST_CASE("a service that could not start answers calls service_unavailable and keeps messages", "[admission]") {
  Fixture fixture;
  const sbus::Decision to_call = fixture.decide(fixture.call(event_body("broken", "svc", "[]")));
  CHECK(to_call.verdict == Verdict::kAnswerError);
  CHECK(to_call.code == sbus::errc::kServiceUnavailable);
  CHECK(to_call.message == "broken.svc is unavailable: start failed: no database");
  const sbus::Decision to_message = fixture.decide(fixture.message(event_body("broken", "svc", "{}")));
  CHECK(to_message.verdict == Verdict::kDeadLetter);
  CHECK(to_message.service == "broken.svc");
  CHECK(to_message.message == "service unavailable: start failed: no database");
}

TEST_CASE("a call is dispatched to its service with its params parsed and its envelope whole", "[admission]") {
  Fixture fixture;
  sbus::Delivery delivery = fixture.call(event_body("math", "add", "[1,2,3]"));
  const sbus::Decision decision = fixture.admission.decide(delivery, fixture.unsent);
  REQUIRE(decision.verdict == Verdict::kDispatch);
  CHECK(decision.runner == 0);
  const sbus::Job& job = decision.job;
  CHECK(job.envelope.is_call());
  CHECK(job.envelope.generation == 3);
  CHECK(job.envelope.delivery_tag == 17);
  CHECK(job.envelope.reply_to == "amq.rabbitmq.reply-to.caller");
  CHECK(job.envelope.correlation_id == "c-1");
  CHECK(job.envelope.key == sbus::CrashJournal::key("amq.rabbitmq.reply-to.caller", "c-1", "event-1"));
  CHECK(job.envelope.reply_nonce.empty());  // a compat token: replies unsigned
  CHECK(job.event.params == "[1,2,3]");     // checked, and handed to the service as they came
  CHECK(job.body.empty());                  // a call's body is not kept
  CHECK(job.bytes > 0);
  // The envelope moved: the Delivery's is empty now.
  CHECK(delivery.envelope.reply_to.empty());
}

TEST_CASE("a message is dispatched with its body and headers, for the error queue", "[admission]") {
  Fixture fixture;
  const std::string body = event_body("test", "record", R"({"event":"hello"})");
  const sbus::Decision decision = fixture.decide(fixture.message(body));
  REQUIRE(decision.verdict == Verdict::kDispatch);
  CHECK(decision.runner == 1);
  CHECK_FALSE(decision.job.envelope.is_call());
  CHECK(decision.job.body == body);
  REQUIRE(decision.job.headers.size() == 1);
  CHECK(decision.job.headers[0].first == "origin");
}

TEST_CASE("an hmac-sha256 call is let in once: its copy is refused as a replay", "[admission]") {
  Fixture fixture;
  const std::string token = sbus::make_hmac_token(kSecret, "event-1", "math", "add", "[1]");
  const std::string body = event_body("math", "add", "[1]", token);
  CHECK(fixture.decide(fixture.call(body)).verdict == Verdict::kDispatch);
  const sbus::Decision copy = fixture.decide(fixture.call(body));
  CHECK(copy.verdict == Verdict::kRefuse);
  CHECK(copy.code == sbus::errc::kReplayed);
}

TEST_CASE("a call redelivered after a lost connection gets the reply kept for it", "[admission]") {
  Fixture fixture;
  fixture.unsent.keep(sbus::CrashJournal::key("amq.rabbitmq.reply-to.caller", "c-1", "event-1"), "the reply");
  sbus::Delivery delivery = fixture.call(event_body("math", "add", "[1]"));
  SECTION("redelivered: the kept reply") {
    delivery.redelivered = true;
    CHECK(fixture.decide(std::move(delivery)).verdict == Verdict::kSendKept);
  }
  SECTION("a new delivery of the same call runs") {
    CHECK(fixture.decide(std::move(delivery)).verdict == Verdict::kDispatch);
  }
}

TEST_CASE("a call that a dead worker started is answered interrupted, unless its service is idempotent",
          "[admission]") {
  Mapped<sbus::CrashJournal> mapped(sbus::CrashJournal::create());
  sbus::CrashJournal* journal = mapped.value;
  REQUIRE(journal != nullptr);
  const pid_t dead = 999999;  // a worker of the same sbusd, gone
  const int slot = journal->claim_slot(dead);
  journal->begin(slot, sbus::CrashJournal::key("amq.rabbitmq.reply-to.caller", "c-1", "event-1"));
  journal->worker_died(dead);
  Fixture fixture(journal);
  sbus::Delivery delivery = fixture.call(event_body("math", "add", "[1]"));
  delivery.redelivered = true;
  SECTION("not run again") {
    const sbus::Decision decision = fixture.decide(std::move(delivery));
    CHECK(decision.verdict == sbus::Decision::Verdict::kAnswerError);
    CHECK(decision.code == sbus::errc::kInterrupted);
  }
  SECTION("idempotent: run again") {
    fixture.add.idempotent = true;
    CHECK(fixture.decide(std::move(delivery)).verdict == Verdict::kDispatch);
  }
}

TEST_CASE("a service that keeps crashing its worker is switched off, its failures counted", "[admission]") {
  Mapped<sbus::CrashJournal> mapped(sbus::CrashJournal::create());
  sbus::CrashJournal* journal = mapped.value;
  REQUIRE(journal != nullptr);
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  for (int crash = 0; crash < 3; ++crash) {
    const pid_t dead = 999900 + crash;
    const int slot = journal->claim_slot(dead, sbus::CrashJournal::service_key("math.add"));
    journal->begin(slot, 1000 + static_cast<std::uint64_t>(crash));
    journal->worker_died(dead, true, std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
  }
  Fixture fixture(journal);
  const sbus::Decision decision = fixture.decide(fixture.call(event_body("math", "add", "[1]")));
  CHECK(decision.verdict == Verdict::kAnswerError);
  CHECK(decision.code == sbus::errc::kServiceUnavailable);
  CHECK(decision.counts_as_failed);
  CHECK(decision.runner == 0);
  // The other services serve.
  CHECK(fixture.decide(fixture.message(event_body("test", "record", "{}"))).verdict == Verdict::kDispatch);
}

namespace {

std::string unix_ms(std::chrono::system_clock::time_point at) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count());
}

}  // namespace

TEST_CASE("a call whose deadline has passed is answered deadline_exceeded, not dispatched", "[admission][deadline]") {
  Fixture fixture;
  sbus::Delivery delivery = fixture.call(event_body("math", "add", "[1,2]"));
  delivery.deadline = unix_ms(std::chrono::system_clock::now() - std::chrono::seconds(2));
  const sbus::Decision decision = fixture.decide(std::move(delivery));
  REQUIRE(decision.verdict == Verdict::kExpired);
  CHECK(decision.code == sbus::errc::kDeadlineExceeded);
  CHECK(decision.runner == 0);  // counted against math.add
  CHECK(decision.job.envelope.is_call());
  CHECK(decision.job.envelope.reply_to == "amq.rabbitmq.reply-to.caller");
  CHECK_FALSE(decision.counts_as_failed);
}

TEST_CASE("a message whose deadline has passed is dropped unrun and counted, not dead-lettered",
          "[admission][deadline]") {
  Fixture fixture;
  sbus::Delivery delivery = fixture.message(event_body("test", "record", R"({"event":"late"})"));
  delivery.deadline = unix_ms(std::chrono::system_clock::now() - std::chrono::milliseconds(1));
  const sbus::Decision decision = fixture.decide(std::move(delivery));
  REQUIRE(decision.verdict == Verdict::kExpired);
  CHECK(decision.runner == 1);
  CHECK_FALSE(decision.job.envelope.is_call());
}

TEST_CASE("a live deadline goes with the job to its service", "[admission][deadline]") {
  Fixture fixture;
  const auto at = std::chrono::system_clock::now() + std::chrono::seconds(5);
  SECTION("a call") {
    sbus::Delivery delivery = fixture.call(event_body("math", "add", "[1,2]"));
    delivery.deadline = unix_ms(at);
    const sbus::Decision decision = fixture.decide(std::move(delivery));
    REQUIRE(decision.verdict == Verdict::kDispatch);
    REQUIRE(decision.job.deadline);
    CHECK(unix_ms(*decision.job.deadline) == unix_ms(at));
  }
  SECTION("a message") {
    sbus::Delivery delivery = fixture.message(event_body("test", "record", R"({"event":"soon"})"));
    delivery.deadline = unix_ms(at);
    const sbus::Decision decision = fixture.decide(std::move(delivery));
    REQUIRE(decision.verdict == Verdict::kDispatch);
    REQUIRE(decision.job.deadline);
    CHECK(unix_ms(*decision.job.deadline) == unix_ms(at));
  }
}

TEST_CASE("a deadline header that cannot be read is no deadline: the call is served", "[admission][deadline]") {
  Fixture fixture;
  const std::string header =
      GENERATE(std::string("soon"), std::string(""), std::string("-5"), std::string("12345678901234567890"),
               std::string("1e12"), std::string("(a header of AMQP type t)"));
  // Absurdly far ahead: no caller waits that long.
  const std::string far = unix_ms(std::chrono::system_clock::now() + std::chrono::hours(24 * 365));
  for (const std::string& value : {header, far}) {
    sbus::Delivery delivery = fixture.call(event_body("math", "add", "[1,2]"));
    delivery.deadline = value;
    const sbus::Decision decision = fixture.decide(std::move(delivery));
    INFO("header " << value);
    REQUIRE(decision.verdict == Verdict::kDispatch);
    CHECK_FALSE(decision.job.deadline);
  }
}

TEST_CASE("default_call_timeout gives a call without a deadline one, from when it is read", "[admission][deadline]") {
  Fixture fixture;
  fixture.config.default_call_timeout_ms = 30000;
  const auto before = std::chrono::system_clock::now();
  SECTION("a call without the header gets now + default_call_timeout") {
    const sbus::Decision decision = fixture.decide(fixture.call(event_body("math", "add", "[1,2]")));
    REQUIRE(decision.verdict == Verdict::kDispatch);
    REQUIRE(decision.job.deadline);
    CHECK(*decision.job.deadline >= before + std::chrono::seconds(30));
    CHECK(*decision.job.deadline <= std::chrono::system_clock::now() + std::chrono::seconds(30));
  }
  SECTION("a call's own deadline wins") {
    const auto at = before + std::chrono::seconds(2);
    sbus::Delivery delivery = fixture.call(event_body("math", "add", "[1,2]"));
    delivery.deadline = unix_ms(at);
    const sbus::Decision decision = fixture.decide(std::move(delivery));
    REQUIRE(decision.job.deadline);
    CHECK(unix_ms(*decision.job.deadline) == unix_ms(at));
  }
  SECTION("a message without the header gets none") {
    const sbus::Decision decision = fixture.decide(fixture.message(event_body("test", "record", "{}")));
    REQUIRE(decision.verdict == Verdict::kDispatch);
    CHECK_FALSE(decision.job.deadline);
  }
  SECTION("0, the default, gives none") {
    fixture.config.default_call_timeout_ms = 0;
    const sbus::Decision decision = fixture.decide(fixture.call(event_body("math", "add", "[1,2]")));
    CHECK_FALSE(decision.job.deadline);
  }
}

TEST_CASE("admission sends an event to the event service whose queue it came from, and to no other",
          "[admission][events]") {
  Fixture fixture;
  const sbus::ServiceConfig audit = service("audit", "orders", sbus::ServiceKind::kEvent);
  fixture.admission.add_service(2, audit);
  const auto event = [&](const std::string& service_name, std::string body) {
    sbus::Delivery delivery = fixture.message(std::move(body));
    delivery.envelope.kind = sbus::DeliveryKind::kEvent;
    delivery.event_service = service_name;
    return delivery;
  };
  const auto v2_token = [&](const std::string& signed_for) {
    const sbus::SignedCall call{signed_for, "event-1", "event", "orders.created", R"({"n":1})", ""};
    return sbus::make_hmac_v2_token(kSecret, call);
  };
  SECTION("to its service, with its topic") {
    const sbus::Decision decision = fixture.decide(event("audit.orders", event_body("event", "orders.created", "[1]")));
    CHECK(decision.verdict == Verdict::kDispatch);
    CHECK(decision.runner == 2);
    CHECK(decision.job.event.service == "orders.created");
    CHECK(decision.job.envelope.is_event());
    CHECK_FALSE(decision.job.body.empty());
  }
  SECTION("signed hmac-sha256-v2 for the events exchange, not for the node") {
    const sbus::Decision ok = fixture.decide(
        event("audit.orders", event_body("event", "orders.created", R"({"n":1})", v2_token("sbus.events"))));
    CHECK(ok.verdict == Verdict::kDispatch);
    const sbus::Decision refused =
        fixture.decide(event("audit.orders", event_body("event", "orders.created", R"({"n":1})", v2_token("NODE-01"))));
    CHECK(refused.verdict == Verdict::kRefuse);
    CHECK(refused.code == sbus::errc::kInvalidSignature);
  }
  SECTION("for a service that takes no events") {
    const sbus::Decision decision = fixture.decide(event("test.record", event_body("event", "orders.created", "[1]")));
    CHECK(decision.verdict == Verdict::kRefuse);
    CHECK(decision.code == sbus::errc::kUnknownService);
    CHECK(decision.message == "Cannot Find Event Service: test.record");
  }
  SECTION("a body that does not name the category event") {
    const sbus::Decision decision = fixture.decide(event("audit.orders", event_body("audit", "orders", "[1]")));
    CHECK(decision.verdict == Verdict::kRefuse);
    CHECK(decision.code == sbus::errc::kMissingElement);
  }
  SECTION("a message to an event service is refused, saying what it is") {
    const sbus::Decision decision = fixture.decide(fixture.message(event_body("audit", "orders", "[1]")));
    CHECK(decision.verdict == Verdict::kRefuse);
    CHECK(decision.code == sbus::errc::kUnknownService);
    CHECK(decision.message.find("it is an event service") != std::string::npos);
  }
}

TEST_CASE("a redelivery whose handler returned in a killed worker is a duplicate, recorded, and not run again",
          "[admission][handled_once]") {
  Mapped<sbus::CrashJournal> mapped(sbus::CrashJournal::create());
  sbus::CrashJournal* journal = mapped.value;
  REQUIRE(journal != nullptr);
  char pattern[] = "/tmp/sbus-admission-XXXXXX";
  const std::string dir = ::mkdtemp(pattern);
  sbus::HandledStoreOptions options;
  options.dir = dir + "/handled";
  options.max_bytes = 4ULL << 20;
  std::string warning;
  std::unique_ptr<sbus::HandledStore> store = sbus::HandledStore::open(options, &warning);
  Fixture fixture(journal);
  fixture.admission.set_handled_store(store.get());
  amqp_basic_properties_t properties{};
  properties._flags = AMQP_BASIC_MESSAGE_ID_FLAG;
  properties.message_id = amqp_cstring_bytes("m-1");
  const bool is_call = GENERATE(false, true);
  auto delivery = [&](bool redelivered) {
    sbus::Delivery made =
        is_call ? fixture.call(event_body("math", "add", "[1]")) : fixture.message(event_body("test", "record", "[1]"));
    made.properties = &properties;
    made.redelivered = redelivered;
    return made;
  };
  // Its first delivery ran; the worker was killed after the handler
  // returned, before the id was recorded.
  const sbus::Decision first = fixture.decide(delivery(false));
  REQUIRE(first.verdict == Verdict::kDispatch);
  const std::string key = first.job.envelope.handled_key;
  REQUIRE_FALSE(key.empty());
  // Killed while the handler ran: run again.
  CHECK(fixture.decide(delivery(true)).verdict == Verdict::kDispatch);
  const pid_t dead = 999997;
  const int slot = journal->claim_slot(dead);
  REQUIRE(journal->mark_returned(slot, sbus::CrashJournal::service_key(key)) >= 0);
  journal->worker_died(dead, true, 1);

  const sbus::Decision again = fixture.decide(delivery(true));
  CHECK(again.verdict == Verdict::kDuplicate);
  const std::optional<sbus::HandledRecord> recorded = store->find(key);
  REQUIRE(recorded);
  if (is_call) {
    CHECK(again.code == sbus::errc::kReplyNotKept);
    CHECK(again.message.find("lost with the worker") != std::string::npos);
    CHECK(recorded->kind == sbus::HandledRecord::Kind::kReplyLost);
  } else {
    CHECK(recorded->kind == sbus::HandledRecord::Kind::kMessage);
  }
  // The store has it now: a copy sent anew is a duplicate too.
  CHECK(fixture.decide(delivery(false)).verdict == Verdict::kDuplicate);
  store.reset();
  std::filesystem::remove_all(dir);
}
