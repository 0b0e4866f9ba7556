#include "worker/worker.hpp"

#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <map>
#include <array>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <unordered_map>
#include <vector>

#include "amqp/amqp_connection.hpp"
#include "base/backoff.hpp"
#include "base/error.hpp"
#include "protocol/error_seal.hpp"
#include "base/log.hpp"
#include "amqp/port_probe.hpp"
#include "protocol/token.hpp"
#include "protocol/wire_codec.hpp"
#include "config/sender_options.hpp"
#include "worker/ack_tracker.hpp"
#include "worker/completion_queue.hpp"
#include "worker/crash_cooldown.hpp"
#include "worker/peer_watch.hpp"
#include "worker/delivery_window.hpp"
#include "worker/hold_stamp.hpp"
#include "worker/node_queues.hpp"
#include "worker/plugin_loader.hpp"
#include "worker/reply_address.hpp"
#include "worker/reply_guard.hpp"
#include "worker/service_runner.hpp"

namespace sbus {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kReconnectFirst{100};
constexpr milliseconds kReconnectCap{10000};
// A connection that lived this long was healthy: the back-off starts over
// and the first reconnect is at once.
constexpr milliseconds kHealthyAfter{10000};
// While the broker is unreachable, how often its port is tried between
// reconnects: the back-off spaces out AMQP handshakes, not this.
constexpr milliseconds kPortWatch{200};
// Replies of calls that finished after their connection was lost, kept for
// their redelivery (the broker requeues the unacked call).
constexpr std::size_t kUnsentReplies = 1024;
// The longest the loop sleeps while heartbeats are on: rabbitmq-c sends
// them and notices missed ones only when called. Without heartbeats, pings
// or a drain under way, an idle worker sleeps until something happens.
constexpr int kPollMillis = 500;
// At most this many deliveries that rabbitmq-c has buffered are read before
// the service threads they went to are woken.
constexpr std::size_t kWakeBatch = 16;
// The error and hold queues are declared on this channel, closed after.
constexpr amqp_channel_t kSetupChannel = 3;
// No service holds the reader seat.
constexpr std::size_t kNoSeat = static_cast<std::size_t>(-1);
// A delivery body's buffer larger than this is given back after the delivery.
constexpr std::size_t kKeptBodyBytes = 64 * 1024;
// After a body larger than this, the worker gives back the heap's free pages.
constexpr std::size_t kTrimAfterBodyBytes = 1024 * 1024;
// What woke the connection thread's epoll_wait.
constexpr std::uint64_t kSignalEvent = 0;
constexpr std::uint64_t kCompletionEvent = 1;
constexpr std::uint64_t kSocketEvent = 2;

// The `type` of the worker's own messages to its queue (probe(),
// prove_own_node()), which it acks when they arrive with its token.
constexpr std::string_view kRouteProbeType = "sbus.route-probe";

bool is_route_probe(const amqp_basic_properties_t& props) {
  return (props._flags & AMQP_BASIC_TYPE_FLAG) &&
         std::string_view(static_cast<const char*>(props.type.bytes), props.type.len) == kRouteProbeType;
}

std::string random_token() {
  std::random_device random;
  std::string token;
  for (int i = 0; i < 4; ++i) token += std::to_string(random());
  return token;
}

// Deeper params are refused: RapidJSON's DOM is destroyed and written out
// recursively, so a document nested 100,000 deep would overflow a service
// thread's stack. No real call nests anywhere near this.
constexpr int kMaxParamsDepth = 64;

// A SAX pass that only counts nesting; iterative, so the check itself
// cannot overflow the stack.
class DepthCheck : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, DepthCheck> {
 public:
  bool StartObject() { return ++depth_ <= kMaxParamsDepth; }
  bool EndObject(rapidjson::SizeType) { return --depth_, true; }
  bool StartArray() { return ++depth_ <= kMaxParamsDepth; }
  bool EndArray(rapidjson::SizeType) { return --depth_, true; }
  bool too_deep() const { return depth_ > kMaxParamsDepth; }

 private:
  int depth_ = 0;
};

// Parses a call's params into job->params, in a pool of its own sized to
// them; false with the reason in `error`.
// RapidJSON's default parse stack; params longer than this get one of their
// length and this more.
constexpr std::size_t kParamsStackBytes = 1024;

bool parse_params(std::string_view text, Job* job, std::string* error) {
  rapidjson::ParseResult result;
  // Each level opens with a '[' or '{' of its own: shorter text cannot be
  // too deep, and skips the pass (and its two allocations).
  // RapidJSON's parse stacks grow by realloc(), which extends a block in
  // place at the top of the thread's heap: large params would leave that
  // heap (and the RSS) as large after they are gone. Sized up front, a
  // large stack is one block that malloc maps on its own and gives back.
  const std::size_t stack_bytes = text.size() > kParamsStackBytes ? text.size() + kParamsStackBytes : kParamsStackBytes;
  if (text.size() > static_cast<std::size_t>(kMaxParamsDepth)) {
    DepthCheck check;
    rapidjson::Reader reader(nullptr, stack_bytes);
    rapidjson::MemoryStream stream(text.data(), text.size());
    result = reader.Parse<rapidjson::kParseIterativeFlag>(stream, check);
    if (check.too_deep()) {
      *error = "params are nested more than " + std::to_string(kMaxParamsDepth) + " deep";
      return false;
    }
  }
  if (!result.IsError()) {
    // A DOM takes about 16 bytes a value: a chunk of twice the text holds
    // most params whole; larger ones take more chunks.
    const std::size_t chunk = std::clamp<std::size_t>(2 * text.size(), 256, 64 * 1024);
    job->params_memory = std::make_unique<rapidjson::MemoryPoolAllocator<>>(chunk);
    // The parse stack's allocator is stateless: one for all, instead of one
    // allocated with each document.
    static rapidjson::CrtAllocator stack_allocator;
    job->params = rapidjson::Document(job->params_memory.get(), stack_bytes, &stack_allocator);
    job->params.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
    result = rapidjson::ParseResult(job->params.GetParseError(), job->params.GetErrorOffset());
  }
  if (result.IsError()) {
    *error = std::string("params are not JSON: ") + rapidjson::GetParseError_En(result.Code()) + " at offset " +
             std::to_string(result.Offset());
    return false;
  }
  return true;
}

// The delivery fields the worker keeps after the envelope is freed.
struct Delivery {
  std::uint64_t delivery_tag = 0;
  std::string reply_to;
  std::string correlation_id;
  bool redelivered = false;
  std::string_view body;
  std::vector<std::pair<std::string, std::string>> headers;  // messages, and a body too large
  // The delivery's properties while handle_delivery() runs; null for a body
  // too large, whose properties went with the frames skipped.
  const amqp_basic_properties_t* properties = nullptr;
  // A body over max_message_bytes: its size. The body was dropped unread.
  std::uint64_t too_large = 0;
};

// The headers of a delivery whose values are text or numbers, as text: what
// the error queue keeps of them.
std::vector<std::pair<std::string, std::string>> text_headers(const amqp_basic_properties_t& props) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (!(props._flags & AMQP_BASIC_HEADERS_FLAG)) return headers;
  for (int i = 0; i < props.headers.num_entries; ++i) {
    const amqp_table_entry_t& entry = props.headers.entries[i];
    std::string value;
    switch (entry.value.kind) {
      case AMQP_FIELD_KIND_UTF8:
      case AMQP_FIELD_KIND_BYTES: value = bytes_to_string(entry.value.value.bytes); break;
      case AMQP_FIELD_KIND_I8: value = std::to_string(entry.value.value.i8); break;
      case AMQP_FIELD_KIND_U8: value = std::to_string(entry.value.value.u8); break;
      case AMQP_FIELD_KIND_I16: value = std::to_string(entry.value.value.i16); break;
      case AMQP_FIELD_KIND_U16: value = std::to_string(entry.value.value.u16); break;
      case AMQP_FIELD_KIND_I32: value = std::to_string(entry.value.value.i32); break;
      case AMQP_FIELD_KIND_U32: value = std::to_string(entry.value.value.u32); break;
      case AMQP_FIELD_KIND_I64: value = std::to_string(entry.value.value.i64); break;
      case AMQP_FIELD_KIND_U64: value = std::to_string(entry.value.value.u64); break;
      default: continue;
    }
    headers.emplace_back(bytes_to_string(entry.key), std::move(value));
  }
  return headers;
}

class Worker : public RunnerHost {
 public:
  Worker(const Config& config, std::size_t broker_index, int status_fd, WorkerShared shared)
      : config_(config),
        broker_index_(broker_index),
        uri_(config.broker_uris[broker_index]),
        status_fd_(status_fd),
        journal_(shared.journal),
        compat_tokens_(config.secret),
        replay_(shared.replay != nullptr ? shared.replay : ReplayCache::create(false)),
        history_(shared.history) {
    init_amqp_pool(&spill_pool_, 4096);
  }
  ~Worker() override { empty_amqp_pool(&spill_pool_); }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  int run();

  // Service threads.
  bool complete(Outcome outcome) override;
  bool read_socket() override;

 private:
  enum class ServeEnd { kStopped, kConnectionLost };
  // What one read found: a frame (a delivery or another), nothing ready
  // (the socket is drained), or a lost connection.
  enum class Read { kFrame, kNothing, kLost };

  void start_services();
  void report_unavailable(const std::string& name, const std::string& reason);
  void read_crashes();
  bool refuse_switched_off(const Delivery& delivery, const Job& job, std::size_t runner);
  void stop_services(Clock::time_point deadline = Clock::time_point::max());
  void abandon_running();
  bool connect();
  bool wait_to_reconnect(milliseconds duration);
  void keep_unsent_reply(std::uint64_t key, std::string body);
  void suspect_recent_replies(int reply_code);
  void publish_quarantined(const std::string& reply_to, const std::string& correlation_id, std::string_view body,
                           std::uint64_t address, ReplyGuard::Caller caller);
  bool may_open_quarantine();
  bool restore_route();
  void note_blocking();
  ServeEnd serve();
  Read read_one();
  Read read_delivery(const amqp_frame_t& deliver);
  Read lost(const char* what, int status);
  bool socket_empty();
  bool drain();
  bool handle_frame(const amqp_frame_t& frame);
  void handle_delivery(const Delivery& delivery);
  void dispatch(Job job, std::size_t runner);
  void wake_services();
  void take_wakes(std::vector<ServiceRunner*>* out);
  static void fire(std::vector<ServiceRunner*>* runners);
  bool watch_connection();
  void unwatch_connection();
  void move_seat(std::size_t runner);
  ServeEnd serve_turns();
  bool flush_completions(bool* read_owed);
  void finish(Outcome& outcome);
  bool finish_inline(Outcome& outcome);
  void begin_stop();
  void forget_pending();
  bool publish_reply(const std::string& reply_to, const std::string& correlation_id, std::string_view body,
                     ReplyGuard::Caller caller);
  void answer_error(const Delivery& delivery, const std::string& id, const char* code, const std::string& message,
                    ReplyGuard::Caller caller = ReplyGuard::Caller::kUnauthenticated);
  void refuse(const Delivery& delivery, const Event& event, const char* code, const std::string& message,
              bool token_refused = false, ReplyGuard::Caller caller = ReplyGuard::Caller::kUnauthenticated);
  void overflow(Job job, std::size_t runner);
  void settle(std::uint64_t tag, bool ack);
  void flush_acks();
  bool send_queued();
  bool publish_dead_letter(std::string_view body, const std::string& service, const std::string& error,
                           int attempts, const std::vector<std::pair<std::string, std::string>>& headers,
                           const std::vector<std::pair<std::string, std::string>>& own_headers = {},
                           const std::string& queue = {});
  bool sleep_unless_signalled(milliseconds duration);
  bool check_signal();
  void report(char status);
  bool probe();
  bool started_before(const Delivery& delivery, const Event& event) const;
  bool check_token(const Event& event, bool redelivery, const char** code, std::string* message);
  bool check_hmac_v2(const Event& event, bool redelivery, const char** code, std::string* message);
  bool remember_nonce(const std::string& nonce, std::int64_t timestamp, std::int64_t now, bool redelivery,
                      const char** code, std::string* message);
  void sign_reply(Reply* reply) const;
  bool back_from_hold(const Delivery& delivery);
  bool probe_overdue();
  bool prove_own_node();
  bool handle_probe_frame(const amqp_frame_t& frame);
  void answer_own(const Delivery& delivery, const Event& event);
  std::string stats_json();

  const Config& config_;
  std::size_t broker_index_;
  BrokerUri uri_;
  AmqpConnection connection_;
  bool connection_ok_ = false;
  bool broker_unreachable_ = false;  // the last connect found no TCP listener
  std::uint64_t generation_ = 0;
  std::string consumer_tag_;
  int status_fd_;
  CrashJournal* journal_;
  CompatTokens compat_tokens_;
  ReplayCache* replay_;
  const WorkerHistory history_;
  // The nonce of the hmac-sha256-v2 call being handled (set by
  // check_token(), cleared for each delivery): every reply to it is signed.
  std::string reply_nonce_;

  int signal_fd_ = -1;
  bool stopping_ = false;
  Clock::time_point next_probe_{};
  Clock::time_point probe_sent_at_{};
  Clock::time_point probe_deadline_{};  // of the probe in flight; none: {}
  bool probe_channel_closed_ = false;
  // The body of probe()'s and prove_own_node()'s messages.
  const std::string route_probe_token_ = random_token();
  Clock::time_point drain_deadline_{};

  // Held by the connection thread except while it sleeps in poll(): then a
  // service thread may take it to publish its reply itself (complete()).
  // Guards everything below and above but the service queues.
  std::mutex loop_mutex_;
  std::unique_lock<std::mutex> loop_lock_{loop_mutex_, std::defer_lock};
  CompletionQueue completions_;
  std::vector<Outcome> completed_;
  std::vector<std::unique_ptr<ServiceRunner>> runners_;
  std::vector<ServiceRunner*> to_wake_;
  std::vector<ServiceRunner*> waking_;  // the connection thread's, taken from to_wake_
  std::size_t reads_since_wake_ = 0;    // buffered deliveries read since the last wake_services()
  // The connection thread sleeps on this epoll: the socket, the completion
  // queue and the signals. The socket is registered behind the seat
  // holder's (wakeup.hpp), so the seat holder is woken for it first.
  int epoll_fd_ = -1;
  std::size_t seat_ = kNoSeat;         // the runner that reads the socket when idle
  std::size_t seat_wanted_ = kNoSeat;  // the runner woken last: take_wakes() seats it
  std::unordered_map<std::string, std::size_t> by_name_;  // "category.service"
  // Services whose plugin failed to load or start, with the reason.
  std::map<std::string, std::string> unavailable_;
  std::unique_ptr<PeerWatch> peer_watch_;
  // Per runner: switched off until then for crashing the worker too often
  // (crash_cooldown.hpp); the epoch when it serves.
  std::vector<Clock::time_point> off_until_;
  std::size_t outstanding_ = 0;  // jobs handed to services and not yet completed
  std::optional<DeliveryWindow> window_;  // the same, by service (start_services())

  // What sbus.stats reports of each service (by runner), counted in finish().
  struct ServiceStats {
    std::uint64_t handled = 0;  // calls answered and messages done
    std::uint64_t failed = 0;   // answered with an error, or moved to the error queue
    std::uint64_t refused_busy = 0;  // calls answered `busy`: over queue_len or queue_bytes
    std::uint64_t held = 0;          // messages moved to the hold queue for the same reason
    std::chrono::nanoseconds busy{0};
  };
  std::vector<ServiceStats> stats_;
  // Deliveries that could not be handled (moved to the error queue), by code.
  std::map<std::string, std::uint64_t> refused_;
  const Clock::time_point started_at_ = Clock::now();
  Clock::time_point connected_at_{};
  std::uint64_t connects_ = 0;
  AckTracker acks_;  // the deliveries of this connection not acked yet
  std::string body_;  // of the delivery being read (read_delivery())
  // The properties of a long delivery, copied out of the channel's pool so
  // that it can be recycled frame by frame (read_content()).
  amqp_pool_t spill_pool_{};
  amqp_basic_properties_t spilled_{};
  std::unordered_map<std::uint64_t, std::string> unsent_replies_;  // by CrashJournal::key
  std::deque<std::uint64_t> unsent_order_;                        // oldest first
  ReplyGuard replies_;
  AmqpConnection quarantine_;
  // When the quarantine connection was last opened (a ring): a flood of
  // forged addresses, each of which costs it a close, may not make the
  // connection thread spend its time reconnecting it.
  std::array<Clock::time_point, 10> quarantine_opens_{};
  std::size_t next_quarantine_open_ = 0;
  std::uint64_t replies_dropped_ = 0;  // to dead addresses, or unauthenticated ones beyond that limit
  std::uint64_t replies_quarantined_ = 0;  // published on the quarantine connection
  // The broker closed the connection because a reply could not be
  // delivered (541): something a caller chose, so the reconnect is at once
  // and the back-off does not grow.
  bool closed_by_reply_ = false;
  // The probe's message came back unroutable: the binding is gone.
  bool route_lost_ = false;
  // connection.blocked: since when, how often, for how long in all.
  Clock::time_point blocked_since_{};
  std::uint64_t blocks_ = 0;
  Clock::duration blocked_total_{};
};

void Worker::start_services() {
  PluginLoader loader;
  // This worker's broker first.
  SenderOptions sender = sender_options_of(config_);
  std::rotate(sender.brokers.begin(), sender.brokers.begin() + static_cast<std::ptrdiff_t>(broker_index_),
              sender.brokers.begin() + static_cast<std::ptrdiff_t>(broker_index_) + 1);
  for (const ServiceConfig& service : config_.services) {
    // A service that cannot load or start takes no other down: it is
    // answered service_unavailable, and the supervisor is told why.
    try {
      ServiceContext context{config_.node, service.category, service.service, service.options, sender};
      auto runner = std::make_unique<ServiceRunner>(
          runners_.size(), service, loader.create(service.plugin_path, service.export_name, sdk_kind(service.kind)),
          std::move(context), this, journal_, config_.max_retries);
      runner->start();
      by_name_[service.name] = runners_.size();
      runners_.push_back(std::move(runner));
    } catch (const Error& e) {
      SBUS_LOG(kError) << e.what() << "; " << service.name << " is unavailable until the next restart or reload, "
                       << "the other services serve";
      unavailable_[service.name] = e.what();
      report_unavailable(service.name, e.what());
    }
  }
  stats_.resize(runners_.size());
  read_crashes();
  window_.emplace(static_cast<std::size_t>(config_.prefetch), runners_.size());
}

// One status record a service: kStatusUnavailable, "NAME: REASON", a line
// feed (the reason on one line).
void Worker::report_unavailable(const std::string& name, const std::string& reason) {
  if (status_fd_ < 0) return;
  std::string record(1, kStatusUnavailable);
  record += name + ": " + reason;
  std::replace(record.begin() + 1, record.end(), '\n', ' ');
  record += '\n';
  [[maybe_unused]] ssize_t n = ::write(status_fd_, record.data(), record.size());
}

// Which services crashed this sbusd's workers too often lately: the crash
// journal remembers across worker restarts. Read once, at start: a crash of
// this worker starts a new one, which reads it again.
void Worker::read_crashes() {
  off_until_.assign(runners_.size(), Clock::time_point{});
  if (journal_ == nullptr) return;
  CrashCooldownOptions options;
  options.limit = config_.crash_limit;
  options.cooldown = std::chrono::seconds(config_.crash_cooldown_seconds);
  const auto now = Clock::now();
  for (std::size_t i = 0; i < runners_.size(); ++i) {
    const std::string& name = runners_[i]->config().name;
    const std::vector<std::int64_t> crashes = journal_->crash_times(CrashJournal::service_key(name));
    const std::optional<std::int64_t> until = cooldown_until(
        crashes, std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count(), options);
    if (!until) continue;
    off_until_[i] = Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(*until)));
    SBUS_LOG(kError) << "service " << name << " crashed the worker " << crashes.size() << " time(s) lately: "
                     << "switched off for "
                     << std::chrono::duration_cast<std::chrono::seconds>(off_until_[i] - now).count() + 1
                     << " s (its calls are answered " << errc::kServiceUnavailable << ")";
  }
}

// A delivery for a service switched off: a call is answered at once, a
// message goes to the error queue with the reason. True when refused.
bool Worker::refuse_switched_off(const Delivery& delivery, const Job& job, std::size_t runner) {
  const Clock::time_point until = off_until_[runner];
  if (until == Clock::time_point{}) return false;
  const auto now = Clock::now();
  if (now >= until) {
    off_until_[runner] = Clock::time_point{};
    SBUS_LOG(kInfo) << "service " << runners_[runner]->config().name << " is switched on again after its cool-down";
    return false;
  }
  const std::string& name = runners_[runner]->config().name;
  const std::string why = "service " + name + " is switched off for " +
                          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(until - now).count() + 1) +
                          " s: it crashed the worker " + std::to_string(config_.crash_limit) +
                          " times within " + std::to_string(config_.crash_cooldown_seconds) + " s";
  ++stats_[runner].failed;
  if (!delivery.reply_to.empty()) {
    answer_error(delivery, job.event.id, errc::kServiceUnavailable, why, ReplyGuard::Caller::kAuthenticated);
  } else if (publish_dead_letter(std::string(delivery.body), name, why, 0, delivery.headers)) {
    settle(delivery.delivery_tag, true);
  }
  return true;
}

// A service thread still busy at `deadline` is abandoned, not joined: the
// process exits with it still in the plugin (a stuck service must not keep
// the worker from stopping), and its runner is never destroyed.
void Worker::stop_services(Clock::time_point deadline) {
  for (auto& runner : runners_) {
    if (!runner->stop_by(deadline)) {
      SBUS_LOG(kWarn) << "service " << runner->config().name
                      << " did not return by the drain timeout: exiting without it";
      (void)runner.release();
    }
  }
  runners_.clear();
  seat_ = kNoSeat;
}

// At the drain timeout: the calls still running are given up. As after a
// crash, a call is answered `interrupted` rather than run twice, unless its
// service is idempotent: then it stays unacked and the broker delivers it
// again. Messages stay unacked too (they run at least once). The crash
// journal keeps their keys either way: a redelivery to another worker of
// this sbusd is answered `interrupted` too, should this answer be lost.
void Worker::abandon_running() {
  for (auto& runner : runners_) {
    std::optional<ServiceRunner::Abandoned> call = runner->abandon_call();
    if (!call) continue;
    --outstanding_;
    const std::string& name = runner->config().name;
    if (call->reply_to.empty() || runner->config().idempotent || call->generation != generation_ ||
        !connection_ok_) {
      SBUS_LOG(kWarn) << "drain timeout: " << name << " still running event " << log_value(call->id)
                      << "; left to the broker for redelivery";
      acks_.leave(call->delivery_tag);
      continue;
    }
    SBUS_LOG(kWarn) << "drain timeout: " << name << " still running event " << log_value(call->id)
                    << "; answered `interrupted`";
    Reply reply{call->id,
                "the call to " + name + " was interrupted: the worker stopped and the drain timeout (" +
                    std::to_string(config_.drain_timeout_seconds) + " s) passed before it returned",
                errc::kInterrupted};
    if (!call->reply_nonce.empty()) {
      reply.signature = hmac_v2_reply_signature(config_.secret, config_.node, call->reply_nonce, reply);
    }
    if (publish_reply(call->reply_to, call->correlation_id, encode_reply(reply), ReplyGuard::Caller::kAuthenticated)) {
      settle(call->delivery_tag, true);
    }
  }
  flush_acks();
}

bool Worker::connect() {
  try {
    ConnectOptions options;
    options.heartbeat_seconds = config_.heartbeat_seconds;
    options.connection_name = "sbusd " + config_.node;
    options.tls = config_.tls;
    AmqpConnection connection = AmqpConnection::open(uri_, options);
    amqp_connection_state_t c = connection.get();
    const amqp_bytes_t exchange = to_bytes(config_.exchange);
    const amqp_bytes_t queue = to_bytes(config_.node);

    // Exactly as py-servicebus declares them (PROTOCOL.md), or the broker
    // refuses the redeclare with PRECONDITION_FAILED.
    amqp_exchange_declare(c, kChannel, exchange, amqp_cstring_bytes("direct"), 0, 0, 0, 0,
                          amqp_empty_table);
    connection.check_last("declare exchange " + config_.exchange);
    // Classic: no arguments, as py-servicebus declares it (an existing queue
    // keeps its type: RabbitMQ refuses to redeclare it with another).
    amqp_table_entry_t type_entry{amqp_cstring_bytes("x-queue-type"), {}};
    type_entry.value.kind = AMQP_FIELD_KIND_UTF8;
    type_entry.value.value.bytes = amqp_cstring_bytes("quorum");
    const amqp_table_t queue_args =
        config_.queue_type == "quorum" ? amqp_table_t{1, &type_entry} : amqp_empty_table;
    amqp_queue_declare(c, kChannel, queue, 0, 1, 0, 0, queue_args);
    connection.check_last("declare queue " + config_.node);
    declare_error_queue(connection, kSetupChannel, config_);
    declare_hold_queue(connection, kSetupChannel, config_);
    amqp_queue_bind(c, kChannel, queue, exchange, queue, amqp_empty_table);
    connection.check_last("bind queue " + config_.node);
    amqp_channel_open(c, kProbeChannel);
    connection.check_last("open probe channel");
    // Direct reply-to on the probe channel: a message published from it
    // carries an address of this broker's node (prove_own_node()).
    amqp_basic_consume(c, kProbeChannel, to_bytes(kDirectReplyPrefix), amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
    connection.check_last("consume " + std::string(kDirectReplyPrefix));

    amqp_basic_qos(c, kChannel, 0, static_cast<std::uint16_t>(window_->size()), 0);
    connection.check_last("basic.qos");
    amqp_basic_consume_ok_t* ok =
        amqp_basic_consume(c, kChannel, queue, amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    connection.check_last("consume from " + config_.node);
    consumer_tag_ = bytes_to_string(ok->consumer_tag);

    connection_ = std::move(connection);
    if (!watch_connection()) {
      connection_.abandon();
      return false;
    }
    connection_ok_ = true;
    connected_at_ = Clock::now();
    ++connects_;
    acks_.clear();
    next_probe_ = Clock::now() + milliseconds(config_.ping_interval_ms);
    probe_deadline_ = {};
    probe_channel_closed_ = false;
    route_lost_ = false;
    ++generation_;
    SBUS_LOG(kInfo) << "connected to " << uri_.redacted() << ", serving queue " << config_.node
                    << " (" << runners_.size() << " services, prefetch " << config_.prefetch << ", window "
                    << window_->size() << ")";
    report(kStatusConnected);
    broker_unreachable_ = false;
    return prove_own_node();
  } catch (const BrokerUnreachable& e) {
    SBUS_LOG(kWarn) << e.what();
    broker_unreachable_ = true;
    return false;
  } catch (const AmqpError& e) {
    SBUS_LOG(kWarn) << e.what();
    broker_unreachable_ = false;
    return false;
  }
}

// Sleeps `duration`, or less: false on a stop signal; after an unreachable
// broker, true as soon as its port accepts connections again, so that a
// restarted broker is served within moments of coming back.
bool Worker::wait_to_reconnect(milliseconds duration) {
  const auto until = Clock::now() + duration;
  for (auto now = Clock::now(); now < until; now = Clock::now()) {
    const auto left = std::chrono::duration_cast<milliseconds>(until - now);
    if (!sleep_unless_signalled(broker_unreachable_ ? std::min(left, kPortWatch) : left)) return false;
    if (broker_unreachable_ && port_accepts(uri_.host, uri_.port, kPortWatch)) {
      SBUS_LOG(kInfo) << uri_.redacted() << " accepts connections again";
      return true;
    }
  }
  return true;
}

// After a 541 close, the addresses replied to just before are suspects
// (ReplyGuard); their replies go through the quarantine connection.
void Worker::suspect_recent_replies(int reply_code) {
  if (reply_code != AMQP_INTERNAL_ERROR) return;
  closed_by_reply_ = true;
  const std::size_t added = replies_.delivery_failed(Clock::now());
  SBUS_LOG(kWarn) << "the broker failed to deliver a reply (541): replies to the " << added
                  << " address(es) used in the last " << ReplyGuard::kWindow.count()
                  << " ms go through a quarantine connection until each is proven alive or dead";
}

// Publishes a reply that may make the broker close its connection (a
// suspect address, an unproven node, an unauthenticated caller: see
// ReplyGuard) on the quarantine connection and waits for the broker to have
// routed it: a synchronous method on the same channel is answered only
// after the publish was handled. The address and its node are then alive
// (cleared, proven) or dead (its replies are dropped from now on). Either
// way the call is done: the caller acks it. Unauthenticated replies are
// dropped instead while the connection has been reopened too often (a
// flood of forged addresses), and every one while the broker is blocked.
void Worker::publish_quarantined(const std::string& reply_to, const std::string& correlation_id,
                                 std::string_view body, std::uint64_t address, ReplyGuard::Caller caller) {
  // A blocked broker would hold this publish and the check after it for the
  // whole RPC timeout, on the connection thread.
  const bool blocked = connection_.blocked();
  if (blocked || (!quarantine_ && caller == ReplyGuard::Caller::kUnauthenticated && !may_open_quarantine())) {
    ++replies_dropped_;
    SBUS_LOG(kDebug) << "reply to " << reply_to << " dropped: "
                     << (blocked ? "the broker is blocked" : "the quarantine connection was reopened too often");
    return;
  }
  try {
    if (!quarantine_) {
      quarantine_opens_[next_quarantine_open_++ % quarantine_opens_.size()] = Clock::now();
      ConnectOptions options;
      options.heartbeat_seconds = 0;
      options.connection_name = "sbusd " + config_.node + " quarantine";
      options.tls = config_.tls;
      quarantine_ = AmqpConnection::open(uri_, options);
    }
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_CORRELATION_ID_FLAG;
    props.correlation_id = to_bytes(correlation_id);
    ++replies_quarantined_;
    quarantine_.check_status(amqp_basic_publish(quarantine_.get(), kChannel, amqp_empty_bytes, to_bytes(reply_to),
                                                0, 0, &props, to_bytes(body)),
                             "publish reply");
    // Any synchronous method: answered only once the publish was handled.
    // basic.qos depends on nothing that may be missing (an exchange that
    // was deleted would make the address look dead).
    amqp_basic_qos(quarantine_.get(), kChannel, 0, 0, 0);
    const amqp_rpc_reply_t reply = amqp_get_rpc_reply(quarantine_.get());
    if (reply.reply_type == AMQP_RESPONSE_NORMAL) {
      if (replies_.route(address) == ReplyGuard::Route::kQuarantine) {
        SBUS_LOG(kInfo) << "reply address " << log_value(reply_to) << " is alive: its replies go the usual way again";
      }
      replies_.alive(address, reply_to);
      return;
    }
    // The reply's method lives in the connection's pool: read it first.
    const std::string why = describe_reply(reply);
    quarantine_.abandon();
    if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION) {
      replies_.dead(address);
      // A caller without a valid token may send these at will: not worth a
      // warning each.
      if (caller == ReplyGuard::Caller::kAuthenticated) {
        SBUS_LOG(kWarn) << "reply address " << log_value(reply_to) << " is dead (" << why
                        << "); replies to it are dropped";
      } else {
        SBUS_LOG(kDebug) << "reply address " << log_value(reply_to) << " is dead (" << why
                         << "); replies to it are dropped";
      }
      return;
    }
    SBUS_LOG(kWarn) << "quarantine connection to " << uri_.redacted() << " failed: " << why;
  } catch (const AmqpError& e) {
    SBUS_LOG(kWarn) << "quarantine connection: " << e.what() << "; a reply to " << log_value(reply_to) << " is dropped";
    quarantine_.abandon();
  }
}

// Whether the quarantine connection may be opened once more now: at most
// as often as quarantine_opens_ has slots in a second.
bool Worker::may_open_quarantine() {
  const Clock::time_point oldest = quarantine_opens_[next_quarantine_open_ % quarantine_opens_.size()];
  return oldest == Clock::time_point{} || Clock::now() - oldest >= std::chrono::seconds(1);
}

void Worker::keep_unsent_reply(std::uint64_t key, std::string body) {
  if (key == 0) return;
  if (unsent_replies_.size() >= kUnsentReplies) {
    unsent_replies_.erase(unsent_order_.front());
    unsent_order_.pop_front();
  }
  if (unsent_replies_.insert_or_assign(key, std::move(body)).second) unsent_order_.push_back(key);
}

void Worker::report(char status) {
  if (status_fd_ < 0) return;
  // Non-blocking: a supervisor that is not reading must not stall serving.
  [[maybe_unused]] ssize_t n = ::write(status_fd_, &status, 1);
}

bool Worker::check_signal() {
  signalfd_siginfo info{};
  while (::read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
    if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) {
      if (!stopping_) SBUS_LOG(kInfo) << "signal " << info.ssi_signo << ": stopping";
      begin_stop();
    }
  }
  return stopping_;
}

bool Worker::sleep_unless_signalled(milliseconds duration) {
  pollfd fd{signal_fd_, POLLIN, 0};
  ::poll(&fd, 1, static_cast<int>(duration.count()));
  return !check_signal();
}

void Worker::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  drain_deadline_ = Clock::now() + std::chrono::seconds(config_.drain_timeout_seconds);
  // Not started: leave them unacked, the broker gives them to the next consumer.
  forget_pending();
  if (connection_ok_ && !consumer_tag_.empty()) {
    amqp_basic_cancel(connection_.get(), kChannel, to_bytes(consumer_tag_));
    if (amqp_get_rpc_reply(connection_.get()).reply_type != AMQP_RESPONSE_NORMAL) {
      connection_ok_ = false;
    }
  }
}

void Worker::forget_pending() {
  for (std::size_t i = 0; i < runners_.size(); ++i) {
    const std::size_t dropped = runners_[i]->discard_queued();
    outstanding_ -= dropped;
    window_->give_back(i, dropped);
  }
}

bool Worker::publish_reply(const std::string& reply_to, const std::string& correlation_id, std::string_view body,
                           ReplyGuard::Caller caller) {
  const std::uint64_t address = ReplyGuard::address(reply_to);
  switch (replies_.route_reply(reply_to, address, caller)) {
    case ReplyGuard::Route::kDrop:
      SBUS_LOG(kDebug) << "reply to dead address " << log_value(reply_to) << " dropped";
      ++replies_dropped_;
      return true;
    case ReplyGuard::Route::kQuarantine:
      publish_quarantined(reply_to, correlation_id, body, address, caller);
      return true;
    case ReplyGuard::Route::kDirect:
      break;
  }
  amqp_basic_properties_t props{};
  if (!correlation_id.empty()) {
    props._flags = AMQP_BASIC_CORRELATION_ID_FLAG;
    props.correlation_id = to_bytes(correlation_id);
  }
  int status = connection_.queue_publish(kChannel, amqp_empty_bytes, to_bytes(reply_to), props, to_bytes(body));
  if (status != AMQP_STATUS_OK) {
    SBUS_LOG(kWarn) << "publish reply to " << log_value(reply_to) << " failed: " << amqp_error_string2(status);
    connection_ok_ = false;
    return false;
  }
  replies_.sent(address, Clock::now());
  return true;
}

// To the error queue, or to `queue`. The x-sbus-* headers are sbusd's own:
// those of the delivery are replaced by `own_headers` and the ones set here.
// An entry of the error queue is sealed (error_seal.hpp) unless it was
// refused for its token (own header x-sbus-token).
bool Worker::publish_dead_letter(std::string_view body, const std::string& service, const std::string& error,
                                 int attempts, const std::vector<std::pair<std::string, std::string>>& headers,
                                 const std::vector<std::pair<std::string, std::string>>& own_headers,
                                 const std::string& queue) {
  // The table points into `texts`, which must outlive the publish.
  std::deque<std::string> texts;
  std::vector<amqp_table_entry_t> entries;
  auto add = [&entries, &texts](std::string key, std::string value) {
    amqp_table_entry_t entry{to_bytes(texts.emplace_back(std::move(key))), {}};
    entry.value.kind = AMQP_FIELD_KIND_UTF8;
    entry.value.value.bytes = to_bytes(texts.emplace_back(std::move(value)));
    entries.push_back(entry);
  };
  for (const auto& [key, value] : headers) {
    if (key.rfind("x-sbus-", 0) != 0) add(key, value);
  }
  bool seal = queue.empty();
  for (const auto& [key, value] : own_headers) {
    add(key, value);
    if (key == "x-sbus-token") seal = false;
  }
  if (seal) add("x-sbus-seal", error_seal(config_.secret, config_.node, body));
  if (!error.empty()) add("x-sbus-error", error);
  add("x-sbus-service", service);
  add("x-sbus-node", config_.node);
  add("x-sbus-attempts", std::to_string(attempts));
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  props.headers = amqp_table_t{static_cast<int>(entries.size()), entries.data()};
  const std::string& to = queue.empty() ? config_.error_queue : queue;
  int status = connection_.queue_publish(kChannel, amqp_empty_bytes, to_bytes(to), props, to_bytes(body));
  if (status != AMQP_STATUS_OK) {
    SBUS_LOG(kWarn) << "publish to " << to << " failed: " << amqp_error_string2(status);
    connection_ok_ = false;
    return false;
  }
  return true;
}

void Worker::settle(std::uint64_t tag, bool ack) {
  if (ack) {
    acks_.ack(tag);
    return;
  }
  if (!acks_.reject(tag)) return;
  amqp_basic_reject_t reject{tag, 0};
  int status = connection_.queue_method(kChannel, AMQP_BASIC_REJECT_METHOD, &reject);
  if (status != AMQP_STATUS_OK) {
    SBUS_LOG(kWarn) << "reject of delivery " << tag << " failed: " << amqp_error_string2(status);
    connection_ok_ = false;
  }
}

// Queues the due acks, then writes everything queued: the replies and acks
// of this turn go out together.
void Worker::flush_acks() {
  if (!connection_ok_) return;
  for (const AckTracker::Ack& ack : acks_.take_due()) {
    amqp_basic_ack_t method{ack.tag, ack.multiple ? amqp_boolean_t{1} : amqp_boolean_t{0}};
    int status = connection_.queue_method(kChannel, AMQP_BASIC_ACK_METHOD, &method);
    if (status != AMQP_STATUS_OK) {
      SBUS_LOG(kWarn) << "ack of delivery " << ack.tag << " failed: " << amqp_error_string2(status);
      connection_ok_ = false;
      return;
    }
  }
  send_queued();
}

bool Worker::send_queued() {
  if (!connection_ok_) return false;
  int status = connection_.flush();
  if (status != AMQP_STATUS_OK) {
    SBUS_LOG(kWarn) << "write to " << uri_.redacted() << " failed: " << amqp_error_string2(status);
    connection_ok_ = false;
  }
  return connection_ok_;
}

void Worker::answer_error(const Delivery& delivery, const std::string& id, const char* code,
                          const std::string& message, ReplyGuard::Caller caller) {
  // Outsiders can send these at will: rate limited, and their values escaped.
  SBUS_LOG_LIMITED(kWarn, "refused message")
      << "event " << (id.empty() ? "-" : log_value(id)) << ": " << code << ": " << log_value(message, 400);
  if (delivery.reply_to.empty()) {
    // A message nobody waits for: reject it (a dead-letter exchange on the
    // queue would keep it).
    settle(delivery.delivery_tag, false);
    return;
  }
  Reply reply{id, message, code};
  sign_reply(&reply);
  if (publish_reply(delivery.reply_to, delivery.correlation_id, encode_reply(reply), caller)) {
    settle(delivery.delivery_tag, true);
  }
}

void Worker::sign_reply(Reply* reply) const {
  if (!reply_nonce_.empty()) reply->signature = hmac_v2_reply_signature(config_.secret, config_.node, reply_nonce_, *reply);
}

// A delivery that cannot be handled: a call gets its error reply, and
// either kind goes to the error queue with the reason (counted in stats),
// so that a sender who got no answer can find out why. `token_refused`
// marks it for `sbus errors requeue`, which must not sign it anew.
void Worker::refuse(const Delivery& delivery, const Event& event, const char* code, const std::string& message,
                    bool token_refused, ReplyGuard::Caller caller) {
  // Outsiders can send these at will: rate limited, and their values escaped.
  SBUS_LOG_LIMITED(kWarn, "refused message")
      << "event " << (event.id.empty() ? "-" : log_value(event.id)) << ": " << code << ": " << log_value(message, 400);
  ++refused_[code];
  if (!delivery.reply_to.empty()) {
    Reply reply{event.id, message, code};
    sign_reply(&reply);
    if (!publish_reply(delivery.reply_to, delivery.correlation_id, encode_reply(reply), caller)) return;
  }
  std::vector<std::pair<std::string, std::string>> own{{"x-sbus-refused", code}};
  if (token_refused) own.emplace_back("x-sbus-token", "refused");
  if (delivery.too_large > 0) own.emplace_back("x-sbus-body", "dropped");
  if (!delivery.reply_to.empty()) own.emplace_back("x-sbus-reply-to", delivery.reply_to);
  const std::string service =
      event.category.empty() && event.service.empty() ? std::string() : event.category + "." + event.service;
  std::vector<std::pair<std::string, std::string>> headers = delivery.headers;
  if (delivery.properties != nullptr && delivery.reply_to.size() > 0) headers = text_headers(*delivery.properties);
  if (publish_dead_letter(delivery.body, service, std::string(code) + ": " + message, 0, headers, own)) {
    settle(delivery.delivery_tag, true);
  }
}

// A job its service has no room for (QueueBudget): a call is answered
// `busy` at once; a message waits in the hold queue, which gives it back to
// the node queue after hold_time. Neither stays in the worker, so a stuck
// service never holds the prefetch window that the other services need.
void Worker::overflow(Job job, std::size_t runner) {
  const ServiceConfig& service = runners_[runner]->config();
  --outstanding_;
  if (!job.reply_to.empty()) {
    ++stats_[runner].refused_busy;
    SBUS_LOG(kDebug) << "event " << log_value(job.event.id) << ": " << service.name << " is busy";
    Reply reply{job.event.id,
                "service " + service.name + " is busy (" + std::to_string(runners_[runner]->queued()) +
                    " waiting, queue_len " + std::to_string(service.queue_len) + ", queue_bytes " +
                    std::to_string(service.queue_bytes) + "; " + std::to_string(window_->held(runner)) + " of " +
                    std::to_string(window_->size()) + " deliveries of the worker's window): try again later",
                errc::kBusy};
    sign_reply(&reply);
    if (publish_reply(job.reply_to, job.correlation_id, encode_reply(reply), ReplyGuard::Caller::kAuthenticated)) {
      settle(job.delivery_tag, true);
    }
    return;
  }
  ++stats_[runner].held;
  SBUS_LOG(kDebug) << "event " << log_value(job.event.id) << ": " << service.name << " is busy; message held for "
                   << config_.hold_ms << " ms";
  const std::int64_t now = std::chrono::duration_cast<milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count();
  if (publish_dead_letter(job.body, service.name, "", 0, job.headers,
                          {{"x-sbus-hold", make_hold_stamp(config_.secret, config_.node, job.body, now)}},
                          hold_queue_name(config_))) {
    settle(job.delivery_tag, true);
  }
}

void Worker::handle_delivery(const Delivery& delivery) {
  reply_nonce_.clear();
  const bool is_call = !delivery.reply_to.empty();
  if (is_call && delivery.body == kPingBody) {
    if (publish_reply(delivery.reply_to, delivery.correlation_id, kPongBody, ReplyGuard::Caller::kUnauthenticated)) {
      settle(delivery.delivery_tag, true);
    }
    return;
  }
  Job job;
  if (delivery.too_large > 0) {
    refuse(delivery, job.event, errc::kTooLarge,
           "message of " + std::to_string(delivery.too_large) + " bytes is over the limit of " +
               std::to_string(config_.max_message_bytes) + " (body dropped unread)");
    return;
  }

  DecodeFailure failure;
  if (!decode_event(delivery.body, &job.event, &failure)) {
    refuse(delivery, job.event, failure.code.c_str(), failure.detail);
    return;
  }
  const char* token_code = nullptr;
  std::string token_message;
  if (!back_from_hold(delivery) &&
      !check_token(job.event, started_before(delivery, job.event), &token_code, &token_message)) {
    refuse(delivery, job.event, token_code, token_message, true);
    return;
  }
  if (job.event.category == kOwnCategory) {
    answer_own(delivery, job.event);
    return;
  }
  const std::string name = job.event.category + "." + job.event.service;
  SBUS_LOG(kDebug) << "event " << log_value(job.event.id) << ": " << log_value(name)
                   << (delivery.redelivered ? " (redelivered)" : "") << " reply_to " << log_value(delivery.reply_to);
  if (auto down = unavailable_.find(name); down != unavailable_.end()) {
    if (!is_call) {
      // Kept, with the reason, for `sbus errors requeue` once it starts.
      if (publish_dead_letter(std::string(delivery.body), name, "service unavailable: " + down->second, 0,
                              delivery.headers)) {
        settle(delivery.delivery_tag, true);
      }
      return;
    }
    answer_error(delivery, job.event.id, errc::kServiceUnavailable, name + " is unavailable: " + down->second,
                 ReplyGuard::Caller::kAuthenticated);
    return;
  }
  auto found = by_name_.find(name);
  const bool kind_matches =
      found != by_name_.end() &&
      (runners_[found->second]->config().kind == ServiceKind::kRpc) == is_call;
  if (!kind_matches) {
    // py-servicebus's words first: its senders read the code from them.
    std::string message =
        std::string(is_call ? "Cannot Find RPC Service: " : "Cannot Find Message Service: ") + name;
    if (found != by_name_.end()) {
      message += is_call ? " (it is a message service: send to it, as `sbus send` does)"
                         : " (it is an RPC service: call it, as `sbus call` does)";
    }
    refuse(delivery, job.event, errc::kUnknownService, message, false, ReplyGuard::Caller::kAuthenticated);
    return;
  }
  if (!is_call) {
    job.key = CrashJournal::key(job.event.id, job.event.token, job.event.params);
    const int crashes =
        delivery.redelivered && journal_ != nullptr ? journal_->interruptions(job.key) : 0;
    if (crashes > config_.max_retries) {
      SBUS_LOG(kError) << "event " << log_value(job.event.id) << ": " << name << " crashed the worker " << crashes
                       << " times; moving it to " << config_.error_queue;
      if (publish_dead_letter(std::string(delivery.body), name,
                              "the message crashed the worker " + std::to_string(crashes) + " times", crashes,
                              delivery.headers)) {
        settle(delivery.delivery_tag, true);
      }
      return;
    }
  }
  if (is_call) {
    job.key = CrashJournal::key(delivery.reply_to, delivery.correlation_id, job.event.id);
    // A call that finished while the connection was down: its reply now.
    if (auto unsent = unsent_replies_.find(job.key); delivery.redelivered && unsent != unsent_replies_.end()) {
      SBUS_LOG(kInfo) << "event " << log_value(job.event.id)
                      << ": redelivered after a lost connection; sending the reply kept for it";
      if (publish_reply(delivery.reply_to, delivery.correlation_id, unsent->second,
                        ReplyGuard::Caller::kAuthenticated)) {
        settle(delivery.delivery_tag, true);
      }
      unsent_replies_.erase(unsent);
      return;
    }
    // Messages run again after a crash (at least once); calls do not,
    // unless the service is idempotent (and then at most max_retries times).
    const bool run_again = runners_[found->second]->config().idempotent &&
                           (journal_ == nullptr || journal_->interruptions(job.key) <= config_.max_retries);
    if (delivery.redelivered && !run_again && journal_ != nullptr && journal_->started_elsewhere(job.key)) {
      answer_error(delivery, job.event.id, errc::kInterrupted,
                   "the call to " + name +
                       " was interrupted: the worker running it died or lost its broker connection;"
                       " it is not run again",
                   ReplyGuard::Caller::kAuthenticated);
      return;
    }
  }
  if (refuse_switched_off(delivery, job, found->second)) return;
  std::string params_error;
  if (!parse_params(job.event.params, &job, &params_error)) {
    refuse(delivery, job.event, errc::kInvalidParams, params_error, false, ReplyGuard::Caller::kAuthenticated);
    return;
  }
  if (!is_call) {
    job.body = delivery.body;
    job.headers = delivery.headers;
  }
  job.bytes = job.body.size() + job.event.params.size() + job.event.id.size() + job.event.token.size() +
              (job.params_memory != nullptr ? job.params_memory->Capacity() : 0);
  job.generation = generation_;
  job.reply_nonce = reply_nonce_;
  job.delivery_tag = delivery.delivery_tag;
  job.reply_to = delivery.reply_to;
  job.correlation_id = delivery.correlation_id;
  ++outstanding_;
  dispatch(std::move(job), found->second);
}

// The services sbusd answers itself, on the thread that read the call (the
// connection thread, or an idle seat holder): they answer also while every
// service thread is busy or stuck.
void Worker::answer_own(const Delivery& delivery, const Event& event) {
  const bool is_call = !delivery.reply_to.empty();
  if (!is_call || event.service != "stats") {
    refuse(delivery, event, errc::kUnknownService,
           std::string(is_call ? "Cannot Find RPC Service: " : "Cannot Find Message Service: ") + kOwnCategory + "." +
               event.service,
           false, ReplyGuard::Caller::kAuthenticated);
    return;
  }
  SBUS_LOG(kDebug) << "event " << log_value(event.id) << ": " << kOwnCategory << ".stats";
  Reply reply{event.id, stats_json(), ""};
  sign_reply(&reply);
  if (publish_reply(delivery.reply_to, delivery.correlation_id, encode_reply(reply), ReplyGuard::Caller::kAuthenticated)) {
    settle(delivery.delivery_tag, true);
  }
}

// This worker, its connection and each of its services, as JSON: see the
// README ("sbus stats").
std::string Worker::stats_json() {
  const auto now = Clock::now();
  const auto seconds = [](auto duration) { return std::chrono::duration<double>(duration).count(); };
  rapidjson::StringBuffer text;
  rapidjson::Writer<rapidjson::StringBuffer> out(text);
  out.SetMaxDecimalPlaces(3);
  out.StartObject();
  out.Key("node");
  out.String(config_.node.c_str(), static_cast<rapidjson::SizeType>(config_.node.size()));
  out.Key("pid");
  out.Int(static_cast<int>(getpid()));
  const std::string broker = uri_.redacted();
  out.Key("broker");
  out.String(broker.c_str(), static_cast<rapidjson::SizeType>(broker.size()));
  out.Key("uptime_s");
  out.Double(seconds(now - started_at_));
  out.Key("connected_s");
  out.Double(seconds(now - connected_at_));
  out.Key("reconnects");
  out.Uint64(connects_ - 1);
  // Counters start from zero with each run of the worker: say how many runs
  // there were before this one and how the last one ended.
  out.Key("restarts");
  out.Uint(history_.restarts);
  if (history_.last_exit_unix_ms > 0) {
    const auto ended = std::chrono::system_clock::time_point(std::chrono::milliseconds(history_.last_exit_unix_ms));
    out.Key("last_exit");
    out.String(history_.last_exit);
    out.Key("last_exit_s_ago");
    out.Double(seconds(std::chrono::system_clock::now() - ended));
  }
  // Other agents serving this node through this broker (PeerWatch).
  out.Key("other_agents");
  out.StartArray();
  for (const PeerWatch::Peer& peer : peer_watch_ ? peer_watch_->peers() : std::vector<PeerWatch::Peer>{}) {
    out.StartObject();
    out.Key("host");
    out.String(peer.host.c_str(), static_cast<rapidjson::SizeType>(peer.host.size()));
    out.Key("pid");
    out.Int64(peer.pid);
    out.Key("same_services");
    out.Bool(peer.same_services());
    for (const auto& [key, names] : {std::pair{"only_there", &peer.only_there}, std::pair{"only_here", &peer.only_here}}) {
      out.Key(key);
      out.StartArray();
      for (const std::string& name : *names) out.String(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
      out.EndArray();
    }
    out.EndObject();
  }
  out.EndArray();
  out.Key("blocked");
  out.Bool(connection_.blocked());
  if (connection_.blocked()) {
    out.Key("blocked_reason");
    out.String(connection_.blocked_reason().c_str(), static_cast<rapidjson::SizeType>(connection_.blocked_reason().size()));
  }
  out.Key("blocks");
  out.Uint64(blocks_);
  out.Key("blocked_s");
  out.Double(seconds(blocked_total_ + (blocked_since_ == Clock::time_point{} ? Clock::duration{} : now - blocked_since_)));
  out.Key("replies_dropped");
  out.Uint64(replies_dropped_);
  out.Key("replies_quarantined");
  out.Uint64(replies_quarantined_);
  out.Key("services");
  out.StartObject();
  for (std::size_t i = 0; i < runners_.size(); ++i) {
    ServiceRunner& runner = *runners_[i];
    const ServiceStats& stats = stats_[i];
    out.Key(runner.config().name.c_str(), static_cast<rapidjson::SizeType>(runner.config().name.size()));
    out.StartObject();
    out.Key("kind");
    out.String(runner.config().kind == ServiceKind::kRpc ? "rpc" : "message");
    out.Key("handled");
    out.Uint64(stats.handled);
    out.Key("failed");
    out.Uint64(stats.failed);
    out.Key("busy_s");
    out.Double(seconds(stats.busy));
    out.Key("running");
    out.Bool(runner.running());
    out.Key("queued");
    out.Uint64(runner.queued());
    out.Key("queued_bytes");
    out.Uint64(runner.queued_bytes());
    out.Key("refused_busy");
    out.Uint64(stats.refused_busy);
    out.Key("held");
    out.Uint64(stats.held);
    out.EndObject();
  }
  for (const ServiceConfig& service : config_.services) {
    auto down = unavailable_.find(service.name);
    if (down == unavailable_.end()) continue;
    out.Key(service.name.c_str(), static_cast<rapidjson::SizeType>(service.name.size()));
    out.StartObject();
    out.Key("kind");
    out.String(service.kind == ServiceKind::kRpc ? "rpc" : "message");
    out.Key("unavailable");
    out.String(down->second.c_str(), static_cast<rapidjson::SizeType>(down->second.size()));
    out.EndObject();
  }
  out.EndObject();
  std::uint64_t refused = 0;
  out.Key("refused_by_code");
  out.StartObject();
  for (const auto& [code, count] : refused_) {
    out.Key(code.c_str(), static_cast<rapidjson::SizeType>(code.size()));
    out.Uint64(count);
    refused += count;
  }
  out.EndObject();
  out.Key("refused");
  out.Uint64(refused);
  out.EndObject();
  return std::string(text.GetString(), text.GetSize());
}

void Worker::dispatch(Job job, std::size_t runner) {
  bool wake = false;
  if (!window_->admits(runner) || !runners_[runner]->try_submit(job, &wake)) {
    overflow(std::move(job), runner);
    return;
  }
  window_->take(runner);
  if (wake) {
    to_wake_.push_back(runners_[runner].get());
    seat_wanted_ = runner;
  }
}

// The service threads that got a job while asleep are woken once the thread
// that read those jobs is about to sleep or to read the next batch: a
// service thread that finishes quickly then finds loop_mutex_ free and
// publishes its reply itself. Called with loop_mutex_ held; the caller
// fires them after letting go of it.
//
// The one woken last takes the reader seat: if its caller waits for each
// reply before the next call, that next call wakes only it.
void Worker::take_wakes(std::vector<ServiceRunner*>* out) {
  if (seat_wanted_ != kNoSeat && seat_wanted_ != seat_ && connection_ok_) move_seat(seat_wanted_);
  seat_wanted_ = kNoSeat;
  out->swap(to_wake_);
  reads_since_wake_ = 0;
}

void Worker::fire(std::vector<ServiceRunner*>* runners) {
  for (ServiceRunner* runner : *runners) runner->wake();
  runners->clear();
}

// The connection thread, with loop_mutex_ held.
void Worker::wake_services() {
  take_wakes(&waking_);
  fire(&waking_);
}

// Registers a new connection's socket: first with the seat holder, then with
// the connection thread, which the kernel then wakes only when the seat
// holder does not sleep on the socket (wakeup.hpp).
bool Worker::watch_connection() {
  const int fd = connection_.fd();
  if (seat_ != kNoSeat && !runners_[seat_]->watch_socket(fd)) {
    SBUS_LOG(kWarn) << "epoll: cannot watch the socket from a service thread: " << std::strerror(errno);
    seat_ = kNoSeat;
  }
  epoll_event event{};
  event.events = EPOLLIN | EPOLLEXCLUSIVE;
  event.data.u64 = kSocketEvent;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    SBUS_LOG(kError) << "epoll: cannot watch the connection's socket: " << std::strerror(errno);
    return false;
  }
  return true;
}

// Before the socket is closed. (A socket rabbitmq-c closed itself has left
// every epoll already.)
void Worker::unwatch_connection() {
  const int fd = connection_.fd();
  if (fd < 0) return;
  if (seat_ != kNoSeat) runners_[seat_]->unwatch_socket(fd);
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void Worker::move_seat(std::size_t runner) {
  const int fd = connection_.fd();
  if (seat_ != kNoSeat) runners_[seat_]->unwatch_socket(fd);
  seat_ = kNoSeat;
  if (!runners_[runner]->watch_socket(fd)) return;  // the connection thread reads, as without a seat
  seat_ = runner;
  // The connection thread's registration goes behind the new one.
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  epoll_event event{};
  event.events = EPOLLIN | EPOLLEXCLUSIVE;
  event.data.u64 = kSocketEvent;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    SBUS_LOG(kError) << "epoll: cannot watch the connection's socket: " << std::strerror(errno) << "; reconnecting";
    connection_ok_ = false;
  }
}

bool Worker::flush_completions(bool* read_owed) {
  *read_owed = completions_.take(&completed_);
  for (Outcome& outcome : completed_) finish(outcome);
  completed_.clear();
  return connection_ok_;
}

// Publishes an outcome's reply (or dead letter) and marks its delivery for
// the ack.
void Worker::finish(Outcome& outcome) {
  --outstanding_;
  window_->give_back(outcome.runner);
  if (!outcome.leave) {
    ServiceStats& stats = stats_[outcome.runner];
    ++stats.handled;
    if (outcome.failed) ++stats.failed;
    stats.busy += outcome.busy;
  }
  if (outcome.generation != generation_ || !connection_ok_) {
    if (!outcome.reply_to.empty() && !outcome.dead_letter && !outcome.leave) {
      SBUS_LOG(kWarn) << "delivery " << outcome.delivery_tag
                      << " finished after its connection was lost; its reply is kept for the redelivery";
      keep_unsent_reply(outcome.key, std::move(outcome.body));
    } else {
      SBUS_LOG(kWarn) << "delivery " << outcome.delivery_tag
                      << " finished after its connection was lost; the broker delivers it again";
    }
    return;
  }
  if (outcome.leave) {
    // Left unacked on purpose: the broker gives it to the next consumer.
    acks_.leave(outcome.delivery_tag);
    return;
  }
  if (outcome.dead_letter) {
    SBUS_LOG_LIMITED(kError, "dead letter") << outcome.service << ": message failed " << outcome.attempts
                                            << " times (" << log_value(outcome.error) << "); moved to "
                                            << config_.error_queue;
    if (!publish_dead_letter(outcome.body, outcome.service, outcome.error, outcome.attempts, outcome.headers)) {
      return;
    }
  } else if (!outcome.reply_to.empty() && !publish_reply(outcome.reply_to, outcome.correlation_id, outcome.body,
                                                         ReplyGuard::Caller::kAuthenticated)) {
    return;
  }
  settle(outcome.delivery_tag, true);
}

// A service thread hands over an outcome. When the connection thread sleeps
// in poll() (its lock is free), the service thread publishes the reply and
// acks itself: one thread wake-up less per call, and the reply out sooner.
// Otherwise, and for anything but a plain reply or ack on a live
// connection, the outcome waits in the queue for the connection thread.
bool Worker::complete(Outcome outcome) {
  std::unique_lock<std::mutex> lock(loop_mutex_, std::try_to_lock);
  const bool idle = lock.owns_lock();
  if (idle && finish_inline(outcome)) return true;
  if (idle) lock.unlock();
  completions_.push(std::move(outcome));
  return idle;
}

// The service thread that holds the reader seat was woken by the socket. It
// reads what came, as the connection thread would have: a call to its own
// service then starts on this thread without another wake-up. At most one
// batch; the rest, and anything but plain reading, it leaves to the
// connection thread, which must then read until nothing is left: the kernel
// woke only this thread for the data.
bool Worker::read_socket() {
  std::unique_lock<std::mutex> lock(loop_mutex_, std::try_to_lock);
  if (!lock.owns_lock()) {
    completions_.owe_read();  // the connection thread is awake: it reads on its next turn
    return false;
  }
  bool drained = false;
  if (connection_ok_ && !stopping_) {
    Read read = Read::kFrame;
    for (std::size_t n = 0; n < kWakeBatch && read == Read::kFrame; ++n) {
      read = read_one();
      if (read == Read::kFrame && socket_empty()) read = Read::kNothing;
    }
    if (read == Read::kLost) connection_ok_ = false;
    drained = read == Read::kNothing;
    flush_acks();  // what the reads answered at once (pings, errors)
  }
  if (!drained) completions_.owe_read();
  thread_local std::vector<ServiceRunner*> wakes;
  take_wakes(&wakes);
  lock.unlock();
  fire(&wakes);
  return true;
}

bool Worker::finish_inline(Outcome& outcome) {
  if (!connection_ok_ || stopping_ || outcome.generation != generation_ || outcome.leave || outcome.dead_letter) {
    return false;
  }
  if (!outcome.reply_to.empty() &&
      replies_.route_reply(outcome.reply_to, ReplyGuard::address(outcome.reply_to),
                           ReplyGuard::Caller::kAuthenticated) != ReplyGuard::Route::kDirect) {
    return false;  // the quarantine path may block: the connection thread's work
  }
  finish(outcome);
  flush_acks();
  // The connection thread must run a turn when the connection failed, or
  // when rabbitmq-c read frames while sending (poll() cannot see those).
  amqp_connection_state_t c = connection_.get();
  if (!connection_ok_ || amqp_frames_enqueued(c) || amqp_data_in_buffer(c)) completions_.wake();
  return true;
}

// Handles a frame that is not a delivery: the broker closing the channel or
// the connection, cancelling the consumer, or returning a message.
bool Worker::handle_frame(const amqp_frame_t& frame) {
  if (frame.frame_type != AMQP_FRAME_METHOD) return true;
  if (connection_.note_blocking(frame)) {
    note_blocking();
    return true;
  }
  if (frame.channel == kProbeChannel && frame.payload.method.id != AMQP_BASIC_RETURN_METHOD &&
      handle_probe_frame(frame)) {
    return true;
  }
  switch (frame.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD:
      return true;
    case AMQP_BASIC_RETURN_METHOD: {
      amqp_message_t message;
      amqp_rpc_reply_t ret = amqp_read_message(connection_.get(), frame.channel, &message, 0);
      if (ret.reply_type != AMQP_RESPONSE_NORMAL) return false;
      amqp_destroy_message(&message);
      // The probe's message, published through the exchange to this node:
      // nothing routes it there any more.
      if (frame.channel == kProbeChannel) route_lost_ = true;
      return true;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      auto* m = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
      SBUS_LOG(kWarn) << "broker closed the channel: " << log_value(bytes_to_string(m->reply_text)) << " ("
                      << m->reply_code << ")";
      suspect_recent_replies(m->reply_code);
      return false;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
      auto* m = static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
      SBUS_LOG(kWarn) << "broker closed the connection: " << log_value(bytes_to_string(m->reply_text)) << " ("
                      << m->reply_code << ")";
      suspect_recent_replies(m->reply_code);
      amqp_connection_close_ok_t ok{};
      amqp_send_method(connection_.get(), 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
      return false;
    }
    case AMQP_BASIC_CANCEL_METHOD:
      SBUS_LOG(kWarn) << "broker cancelled the consumer of queue " << config_.node;
      return false;
    default:
      return true;
  }
}

Worker::Read Worker::lost(const char* what, int status) {
  SBUS_LOG(kWarn) << "connection to " << uri_.redacted() << " lost " << what << ": " << amqp_error_string2(status);
  connection_ok_ = false;
  return Read::kLost;
}

// Reads one delivery or frame if one is ready.
Worker::Read Worker::read_one() {
  amqp_connection_state_t c = connection_.get();
  amqp_maybe_release_buffers(c);
  amqp_frame_t frame;
  timeval zero{0, 0};
  // rabbitmq-c times out only after a recv() found the socket empty.
  const int status = amqp_simple_wait_frame_noblock(c, &frame, &zero);
  if (status == AMQP_STATUS_TIMEOUT) return Read::kNothing;
  if (status != AMQP_STATUS_OK) return lost("reading", status);
  if (frame.frame_type == AMQP_FRAME_METHOD && frame.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
    return read_delivery(frame);
  }
  return handle_frame(frame) ? Read::kFrame : Read::kLost;
}

// A delivery: its content (read_content()), then handle_delivery(). A
// frame of another channel read meanwhile is handled as read_one() would.
Worker::Read Worker::read_delivery(const amqp_frame_t& deliver) {
  const auto* method = static_cast<const amqp_basic_deliver_t*>(deliver.payload.method.decoded);
  const std::uint64_t tag = method->delivery_tag;
  const bool redelivered = method->redelivered != 0;
  const amqp_basic_properties_t* props = nullptr;
  bool closed = false;  // a close read in between, already logged by handle_frame()
  const auto other = [&](const amqp_frame_t& frame) {
    closed = !handle_frame(frame);
    return !closed;
  };
  std::uint64_t size = 0;
  int status = read_content(connection_.get(), deliver.channel, &props, &body_, other, config_.max_message_bytes,
                            &size, &spill_pool_, &spilled_);
  Delivery delivery;
  if (status == kContentTooLarge) {
    // Refused without holding the body: what the reply and the error queue
    // need of the properties is copied before skip_body() frees them.
    delivery.too_large = size;
    delivery.headers = text_headers(*props);
    if ((props->_flags & AMQP_BASIC_REPLY_TO_FLAG) && props->reply_to.len > 0) {
      delivery.reply_to = bytes_to_string(props->reply_to);
    }
    if (props->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
      delivery.correlation_id = bytes_to_string(props->correlation_id);
    }
    props = nullptr;
    status = skip_body(connection_.get(), deliver.channel, size, other);
  }
  if (status != AMQP_STATUS_OK) {
    if (closed) return Read::kLost;
    return lost("reading a delivery", status);
  }

  // Only channel 1 consumes calls; the probe channel's direct reply-to
  // consumer takes no acks, and nothing is meant to reach it.
  if (deliver.channel != kChannel) return Read::kFrame;
  // Every delivery, also one left unhandled while stopping, which a
  // multiple ack must never cover.
  acks_.track(tag, !stopping_);
  if (!stopping_ && props != nullptr && is_route_probe(*props) && body_ == route_probe_token_) {
    // The worker's own message (probe(), prove_own_node()): it arrived.
    if (props->_flags & AMQP_BASIC_REPLY_TO_FLAG) {
      const std::string reply_to = bytes_to_string(props->reply_to);
      replies_.alive(ReplyGuard::address(reply_to), reply_to);
    }
    settle(tag, true);
  } else if (!stopping_) {
    delivery.delivery_tag = tag;
    delivery.redelivered = redelivered;
    if (props != nullptr) {
      if ((props->_flags & AMQP_BASIC_REPLY_TO_FLAG) && props->reply_to.len > 0) {
        delivery.reply_to = bytes_to_string(props->reply_to);
      }
      if (props->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
        delivery.correlation_id = bytes_to_string(props->correlation_id);
      }
      delivery.body = body_;
      if (delivery.reply_to.empty()) delivery.headers = text_headers(*props);
      delivery.properties = props;
    }
    handle_delivery(delivery);
  }
  // While stopping, a delivery stays unacked: the broker requeues it.
  if (body_.capacity() > kKeptBodyBytes) {
    // A large body came in frame_max pieces through the heap: the free
    // chunks it leaves below live ones would stay in RSS. Rare enough to
    // trim every arena for it.
    const bool large = body_.capacity() > kTrimAfterBodyBytes || delivery.too_large > kTrimAfterBodyBytes;
    std::string().swap(body_);
    if (large) {
      // Its frames too: they are freed when the channel's buffers are
      // released, which would otherwise wait for the next read.
      if (props == &spilled_) recycle_amqp_pool(&spill_pool_);
      props = nullptr;
      amqp_maybe_release_buffers_on_channel(connection_.get(), deliver.channel);
      malloc_trim(0);
    }
  }
  if (props == &spilled_) recycle_amqp_pool(&spill_pool_);
  return connection_ok_ ? Read::kFrame : Read::kLost;
}

// Whether all that reached the socket has been read, without another read:
// one ioctl instead of the recv() that finds nothing and rabbitmq-c's poll()
// after it, on the way to the call. Plain TCP only: over TLS, whether
// OpenSSL holds a record back is known only by reading.
bool Worker::socket_empty() {
  amqp_connection_state_t c = connection_.get();
  if (uri_.tls || amqp_frames_enqueued(c) || amqp_data_in_buffer(c)) return false;
  int unread = 0;
  return ::ioctl(connection_.fd(), FIONREAD, &unread) == 0 && unread == 0;
}

// Reads until nothing is ready (a read owed by the seat holder: the kernel
// woke only it for that data, and no new edge may come).
bool Worker::drain() {
  for (;;) {
    switch (read_one()) {
      case Read::kFrame:
        if (++reads_since_wake_ >= kWakeBatch) wake_services();
        break;
      case Read::kNothing:
        return true;
      case Read::kLost:
        return false;
    }
  }
}

// The ping watcher's probe, sent without waiting: a message through the
// exchange to this node's queue, mandatory, then a passive declare of the
// node queue on the probe channel, answered by the broker's channel and
// queue processes (handle_probe_frame()). A broker that hangs or a link
// that silently drops packets leaves it unanswered past ping_timeout; then
// the connection is given up so that the reconnect logic runs
// (probe_overdue()). Not waiting keeps rabbitmq-c out of a synchronous
// call, which closes the socket when it times out: during a resource
// alarm the broker reads nothing after a publish, and its
// connection.blocked must be read, not timed out on.
//
// The message checks the route callers use: a deleted exchange closes the
// probe channel (404) instead of answering the declare, a deleted binding
// returns the message; either way restore_route() puts them back. Routed,
// it reaches this worker, which acks it unread.
bool Worker::probe() {
  next_probe_ = Clock::now() + milliseconds(config_.ping_interval_ms);
  // The broker said it holds this connection's publishes: it is not hung.
  if (connection_.blocked()) return true;
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_EXPIRATION_FLAG;
  props.type = to_bytes(kRouteProbeType);
  props.expiration = amqp_cstring_bytes("0");  // never waits in the queue behind calls
  amqp_queue_declare_t declare{};
  declare.queue = to_bytes(config_.node);
  declare.passive = 1;
  if (connection_.queue_publish(kProbeChannel, to_bytes(config_.exchange), to_bytes(config_.node), props,
                                to_bytes(route_probe_token_), true) != AMQP_STATUS_OK ||
      connection_.queue_method(kProbeChannel, AMQP_QUEUE_DECLARE_METHOD, &declare) != AMQP_STATUS_OK) {
    SBUS_LOG(kWarn) << "ping: cannot write to " << uri_.redacted() << "; reconnecting";
    connection_ok_ = false;
    return false;
  }
  probe_sent_at_ = Clock::now();
  probe_deadline_ = probe_sent_at_ + milliseconds(config_.ping_timeout_ms);
  return send_queued();
}

// Sends the node queue (through the default exchange, which cannot be
// missing) a message from the probe channel with reply_to set to direct
// reply-to: the broker writes this connection's own address into it, whose
// node is the broker's own, alive by definition. When the worker reads it
// (read_delivery()), replies of authenticated callers connected to that
// node go out directly from the first, without the quarantine (ReplyGuard).
// Its body is a random token of this worker, so that nobody else's message
// proves a node.
bool Worker::prove_own_node() {
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_REPLY_TO_FLAG;
  props.type = to_bytes(kRouteProbeType);
  props.reply_to = to_bytes(kDirectReplyPrefix);
  if (connection_.queue_publish(kProbeChannel, amqp_empty_bytes, to_bytes(config_.node), props,
                                to_bytes(route_probe_token_)) != AMQP_STATUS_OK) {
    connection_ok_ = false;
  }
  send_queued();
  return true;
}

// False when the probe in flight is past its deadline: the broker or the
// link is broken. While the broker says the connection is blocked, the
// deadline moves on: it will answer once the alarm clears.
bool Worker::probe_overdue() {
  if (probe_deadline_ == Clock::time_point{} || Clock::now() < probe_deadline_) return false;
  if (connection_.blocked()) {
    probe_deadline_ = Clock::now() + milliseconds(config_.ping_timeout_ms);
    return false;
  }
  SBUS_LOG(kWarn) << "ping: no answer from " << uri_.redacted() << " within " << config_.ping_timeout_ms
                  << " ms; reconnecting";
  connection_ok_ = false;
  return true;
}

// A frame of the probe channel: the answer to the probe, the probe's
// message returned unroutable, or the channel closed because the exchange
// is gone. False if the connection must be given up.
bool Worker::handle_probe_frame(const amqp_frame_t& frame) {
  switch (frame.payload.method.id) {
    case AMQP_QUEUE_DECLARE_OK_METHOD:
      SBUS_LOG(kDebug) << "ping: broker answered in "
                       << std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - probe_sent_at_).count()
                       << " us";
      probe_deadline_ = {};
      return true;
    case AMQP_CHANNEL_CLOSE_METHOD: {
      auto* m = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
      if (m->reply_code != AMQP_NOT_FOUND) break;
      SBUS_LOG(kWarn) << "ping: the broker closed the probe channel: " << bytes_to_string(m->reply_text)
                      << "; declaring exchange " << config_.exchange << " and binding queue " << config_.node
                      << " again";
      amqp_channel_close_ok_t ok{};
      if (amqp_send_method(connection_.get(), kProbeChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK) {
        return false;
      }
      probe_deadline_ = {};
      probe_channel_closed_ = true;
      route_lost_ = true;
      return true;
    }
    default:
      return true;
  }
  return false;
}

// A redelivery of a delivery this node has started (the crash journal knows
// it) or finished (its reply is kept): its nonce was seen, by this very
// delivery, so it is no replay; what it gets is decided as for any
// redelivery (interrupted, run again, the kept reply). A replayed copy
// published by someone else is a new delivery (not redelivered), and one
// that shares the key is answered just as harmlessly.
bool Worker::started_before(const Delivery& delivery, const Event& event) const {
  if (!delivery.redelivered) return false;
  if (delivery.reply_to.empty()) {
    return journal_ != nullptr && journal_->interruptions(CrashJournal::key(event.id, event.token, event.params)) > 0;
  }
  const std::uint64_t key = CrashJournal::key(delivery.reply_to, delivery.correlation_id, event.id);
  return unsent_replies_.count(key) > 0 || (journal_ != nullptr && journal_->started_elsewhere(key));
}

// Declares the exchange and binds the node queue to it again, on the probe
// channel; false (and the connection is given up, so that connect()
// declares everything) if the broker refuses.
bool Worker::restore_route() {
  route_lost_ = false;
  amqp_connection_state_t c = connection_.get();
  if (!send_queued()) return false;
  if (probe_channel_closed_) {
    amqp_channel_open(c, kProbeChannel);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
      SBUS_LOG(kWarn) << "reopening the probe channel failed; reconnecting";
      connection_ok_ = false;
      return false;
    }
    probe_channel_closed_ = false;
  }
  amqp_exchange_declare(c, kProbeChannel, to_bytes(config_.exchange), amqp_cstring_bytes("direct"), 0, 0, 0, 0,
                        amqp_empty_table);
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(c);
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) {
    amqp_queue_bind(c, kProbeChannel, to_bytes(config_.node), to_bytes(config_.exchange), to_bytes(config_.node),
                    amqp_empty_table);
    reply = amqp_get_rpc_reply(c);
  }
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
    SBUS_LOG(kWarn) << "declaring exchange " << config_.exchange << " and binding queue " << config_.node
                    << " again failed: " << describe_reply(reply) << "; reconnecting";
    connection_ok_ = false;
    return false;
  }
  SBUS_LOG(kWarn) << "exchange " << config_.exchange << " and the binding of queue " << config_.node
                  << " are back: callers reach this node again";
  return true;
}

// The broker's connection.blocked or unblocked, already recorded by
// connection_: logged, counted for stats. While blocked, replies and acks
// wait in the socket, the probe is skipped and flush() waits for the
// socket without the write_stall limit.
void Worker::note_blocking() {
  const auto now = Clock::now();
  if (connection_.blocked()) {
    if (blocked_since_ != Clock::time_point{}) return;
    blocked_since_ = now;
    ++blocks_;
    SBUS_LOG(kWarn) << "broker " << uri_.redacted() << " blocked this connection: " << connection_.blocked_reason()
                    << "; replies and acks wait until it unblocks";
    return;
  }
  if (blocked_since_ == Clock::time_point{}) return;
  blocked_total_ += now - blocked_since_;
  SBUS_LOG(kWarn) << "broker " << uri_.redacted() << " unblocked this connection after "
                  << std::chrono::duration_cast<milliseconds>(now - blocked_since_).count() << " ms";
  blocked_since_ = {};
  // A probe held by the block gets its whole timeout from now.
  if (probe_deadline_ != Clock::time_point{}) probe_deadline_ = now + milliseconds(config_.ping_timeout_ms);
}

// Checks the event's token against the modes in `accept`. The messages name
// what failed, never the secret or the expected value. `redelivery`: see
// started_before().
bool Worker::check_token(const Event& event, bool redelivery, const char** code, std::string* message) {
  const auto accepts = [this](std::string_view mode) {
    return std::find(config_.accept.begin(), config_.accept.end(), mode) != config_.accept.end();
  };
  const auto now = std::chrono::system_clock::now();
  if (event.token.rfind(kHmacV2Prefix, 0) == 0) {
    if (accepts(kHmacV2Mode)) return check_hmac_v2(event, redelivery, code, message);
    *code = errc::kInvalidToken;
    *message = "Token not valid! (this agent does not accept hmac-sha256-v2 tokens)";
    return false;
  }
  if (event.token.rfind(kHmacPrefix, 0) != 0) {
    if (accepts("compat") && compat_tokens_.valid(event.token, now)) return true;
    *code = errc::kInvalidToken;
    *message = accepts("compat") ? "Token not valid!" : "Token not valid! (this agent accepts only hmac tokens)";
    return false;
  }
  HmacToken token;
  if (!accepts("hmac-sha256") || !parse_hmac_token(event.token, &token)) {
    *code = errc::kInvalidToken;
    *message = accepts("hmac-sha256") ? "Token not valid! (malformed hmac-sha256 token)"
                                      : "Token not valid! (this agent does not accept hmac-sha256 tokens)";
    return false;
  }
  const std::int64_t seconds = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (token.timestamp < seconds - config_.max_skew_seconds || token.timestamp > seconds + config_.max_skew_seconds) {
    *code = errc::kTokenExpired;
    *message = "token timestamp is " + std::to_string(seconds - token.timestamp) +
               " s off this agent's clock (max_skew " + std::to_string(config_.max_skew_seconds) + " s)";
    return false;
  }
  const std::string expected = hmac_signature(config_.secret, event.id, event.category, event.service,
                                              event.params, token.timestamp, token.nonce);
  if (!equal_constant_time(expected, token.signature)) {
    *code = errc::kInvalidSignature;
    *message = "signature does not match the call (tampered, or another secret)";
    return false;
  }
  return remember_nonce(token.nonce, token.timestamp, seconds, redelivery, code, message);
}

// hmac-sha256-v2: as hmac-sha256, and signed for this node; replies to it
// are signed (reply_nonce_).
bool Worker::check_hmac_v2(const Event& event, bool redelivery, const char** code, std::string* message) {
  HmacV2Token token;
  if (!parse_hmac_v2_token(event.token, &token)) {
    *code = errc::kInvalidToken;
    *message = "Token not valid! (malformed hmac-sha256-v2 token)";
    return false;
  }
  const std::int64_t seconds =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (token.timestamp < seconds - config_.max_skew_seconds || token.timestamp > seconds + config_.max_skew_seconds) {
    *code = errc::kTokenExpired;
    *message = "token timestamp is " + std::to_string(seconds - token.timestamp) +
               " s off this agent's clock (max_skew " + std::to_string(config_.max_skew_seconds) + " s)";
    return false;
  }
  const SignedCall call{config_.node, event.id, event.category, event.service, event.params, token.caller};
  if (!equal_constant_time(hmac_v2_call_signature(config_.secret, call, token.timestamp, token.nonce),
                           token.signature)) {
    *code = errc::kInvalidSignature;
    *message = "signature does not match the call (tampered, signed for another node, or another secret)";
    return false;
  }
  if (!remember_nonce(token.nonce, token.timestamp, seconds, redelivery, code, message)) return false;
  reply_nonce_ = std::move(token.nonce);
  return true;
}

// Only a correctly signed call takes a slot: junk cannot fill the cache.
bool Worker::remember_nonce(const std::string& nonce, std::int64_t timestamp, std::int64_t now, bool redelivery,
                            const char** code, std::string* message) {
  if (replay_ == nullptr) {
    *code = errc::kReplayed;
    *message = "no replay cache: refusing hmac calls";
    return false;
  }
  switch (replay_->remember(nonce, timestamp + config_.max_skew_seconds, now)) {
    case ReplayCache::Result::kFresh:
      return true;
    case ReplayCache::Result::kReplayed:
      if (redelivery) return true;
      *code = errc::kReplayed;
      *message = "this call was already received (nonce seen before): replay refused";
      return false;
    case ReplayCache::Result::kFull:
      *code = errc::kReplayed;
      *message = "replay cache full: call refused";
      return false;
  }
  return false;
}

// A message this node held (overflow()) and the hold queue gave back: its
// token was checked when it first came, and an hmac-sha256 one would now be
// refused as a replay. The stamp proves it; each is let in once.
bool Worker::back_from_hold(const Delivery& delivery) {
  if (!delivery.reply_to.empty() || replay_ == nullptr) return false;
  const auto found = std::find_if(delivery.headers.begin(), delivery.headers.end(),
                                  [](const auto& header) { return header.first == "x-sbus-hold"; });
  if (found == delivery.headers.end()) return false;
  const auto now = std::chrono::system_clock::now();
  const std::int64_t now_ms = std::chrono::duration_cast<milliseconds>(now.time_since_epoch()).count();
  const milliseconds max_age = milliseconds(config_.hold_ms) + std::chrono::seconds(config_.max_skew_seconds);
  HoldStamp stamp;
  if (!check_hold_stamp(found->second, config_.secret, config_.node, delivery.body, now_ms, max_age, &stamp)) {
    return false;
  }
  const std::int64_t expires = (stamp.millis + max_age.count()) / 1000 + 1;
  return replay_->remember("hold:" + stamp.signature, expires, now_ms / 1000) == ReplayCache::Result::kFresh;
}

Worker::ServeEnd Worker::serve() {
  const ServeEnd end = serve_turns();
  wake_services();
  return end;
}

Worker::ServeEnd Worker::serve_turns() {
  amqp_connection_state_t c = connection_.get();
  for (;;) {
    bool read_owed = false;
    if (!flush_completions(&read_owed)) return ServeEnd::kConnectionLost;
    flush_acks();
    if (!connection_ok_) return ServeEnd::kConnectionLost;
    if (stopping_ && (outstanding_ == 0 || Clock::now() >= drain_deadline_)) {
      if (outstanding_ > 0) {
        SBUS_LOG(kWarn) << "drain timeout: " << outstanding_ << " calls still running are abandoned";
        abandon_running();
      }
      return ServeEnd::kStopped;
    }
    if (read_owed) {
      if (!drain()) return ServeEnd::kConnectionLost;
      continue;
    }
    // Frames rabbitmq-c already holds are not visible to poll. The service
    // threads woken for the deliveries read so far wait for a batch of
    // them: each wake-up then starts several jobs, not one.
    if (amqp_frames_enqueued(c) || amqp_data_in_buffer(c)) {
      if (++reads_since_wake_ >= kWakeBatch) wake_services();
      if (read_one() == Read::kLost) return ServeEnd::kConnectionLost;
      continue;
    }
    const auto now = Clock::now();
    const auto millis_until = [now](Clock::time_point when) {
      return static_cast<int>(std::chrono::duration_cast<milliseconds>(when - now).count()) + 1;
    };
    int wait = amqp_get_heartbeat(c) > 0 ? kPollMillis : -1;
    if (route_lost_) {
      SBUS_LOG(kWarn) << "ping: the probe came back unroutable: queue " << config_.node << " is not bound to exchange "
                      << config_.exchange << "; binding it again";
      wake_services();
      if (!restore_route()) return ServeEnd::kConnectionLost;
      continue;
    }
    if (config_.ping_interval_ms > 0) {
      if (probe_overdue()) return ServeEnd::kConnectionLost;
      if (probe_deadline_ == Clock::time_point{} && now >= next_probe_) {
        if (!probe()) return ServeEnd::kConnectionLost;
        continue;
      }
      const Clock::time_point next = probe_deadline_ != Clock::time_point{} ? probe_deadline_ : next_probe_;
      wait = wait < 0 ? millis_until(next) : std::min(wait, millis_until(next));
    }
    if (stopping_) wait = wait < 0 ? millis_until(drain_deadline_) : std::min(wait, millis_until(drain_deadline_));
    // Outcomes queued since the top of this turn are taken instead.
    if (!completions_.watch()) continue;
    take_wakes(&waking_);
    loop_lock_.unlock();
    fire(&waking_);
    epoll_event events[3];
    const int ready = epoll_wait(epoll_fd_, events, 3, wait);
    loop_lock_.lock();
    completions_.unwatch();
    if (ready < 0 && errno != EINTR) return ServeEnd::kConnectionLost;
    // Also on a timeout: rabbitmq-c sends a due heartbeat and notices a
    // missed one only inside its read calls.
    bool readable = ready == 0;
    for (int i = 0; i < ready; ++i) {
      if (events[i].data.u64 == kSignalEvent) check_signal();
      if (events[i].data.u64 == kSocketEvent) readable = true;
    }
    if (readable && read_one() == Read::kLost) return ServeEnd::kConnectionLost;
  }
}

int Worker::run() {
  loop_lock_.lock();
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal_fd_ = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kSignalEvent;
  const bool watching = signal_fd_ >= 0 && epoll_fd_ >= 0 && epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, signal_fd_, &event) == 0;
  event.data.u64 = kCompletionEvent;
  if (!watching || epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, completions_.fd(), &event) != 0) {
    SBUS_LOG(kError) << "signalfd or epoll: " << std::strerror(errno);
    return kWorkerExitFatal;
  }

  wire_codec_init();
  try {
    start_services();
  } catch (const Error& e) {
    SBUS_LOG(kError) << e.what();
    stop_services();
    return kWorkerExitFatal;
  }
  // Other agents of this node on this broker, on a thread of its own.
  {
    ConnectOptions options;
    options.heartbeat_seconds = 0;
    options.connection_name = "sbusd " + config_.node + " agent watch";
    options.tls = config_.tls;
    std::vector<std::string> names;
    for (const ServiceConfig& service : config_.services) names.push_back(service.name);
    peer_watch_ = std::make_unique<PeerWatch>(uri_, options, config_.exchange, config_.node, std::move(names));
    peer_watch_->start();
  }
  // What the supervisor's heap and plugin loading left free: give it back.
  malloc_trim(0);

  // Exponential back-off with jitter between failed connects, and after a
  // connection that did not stay up long: a broker that accepts and drops
  // at once is not hammered.
  Backoff backoff({kReconnectFirst, kReconnectCap, 0.25}, static_cast<std::uint32_t>(getpid()));
  bool connect_now = true;
  while (!check_signal()) {
    if (!connect_now) {
      const milliseconds wait = backoff.next();
      SBUS_LOG(kInfo) << "reconnecting to " << uri_.redacted() << " in " << wait.count() << " ms";
      if (!wait_to_reconnect(wait)) break;
    }
    connect_now = false;
    closed_by_reply_ = false;
    if (!connect()) continue;
    const auto connected_at = Clock::now();
    ServeEnd end = serve();
    if (end == ServeEnd::kStopped) break;
    // Lost: jobs not started will be redelivered; running ones finish and
    // their replies are kept for their redelivery (flush_completions).
    connection_ok_ = false;
    report(kStatusDisconnected);
    forget_pending();
    unwatch_connection();
    connection_.abandon();
    quarantine_.abandon();
    if (Clock::now() - connected_at >= kHealthyAfter) {
      backoff.reset();
      connect_now = true;
    }
    // What a caller sent made the broker close it: nothing wrong with the
    // broker, and the address is a suspect now (ReplyGuard).
    if (closed_by_reply_) connect_now = true;
  }

  unwatch_connection();
  connection_.close();
  quarantine_.close();
  stop_services(stopping_ ? drain_deadline_ : Clock::time_point::max());
  ::close(epoll_fd_);
  ::close(signal_fd_);
  SBUS_LOG(kInfo) << "stopped";
  return kWorkerExitOk;
}

}  // namespace

int run_worker(const Config& config, std::size_t broker_index, int status_fd, WorkerShared shared) {
  // Blocks are taken on one thread and freed on another (params, replies);
  // with glibc's sliding thresholds the heap top then grows and is trimmed
  // again and again under load. Fixed thresholds keep the heap as it is.
  mallopt(M_MMAP_THRESHOLD, 512 * 1024);
  mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);
  Worker worker(config, broker_index, status_fd, shared);
  return worker.run();
}

}  // namespace sbus
