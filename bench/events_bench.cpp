// sbus-events-bench: events published with confirms to one event service
// and handled, beside the floor doing the same publish-consume-ack on one
// queue in the same run (docs/performance.md, "Events").
//
//   sbus-events-bench --port PORT --sbusd PATH --plugin-dir DIR [--quick]
//                     [--runs N] [--seconds S]
//
// sbus: sbusd serves the node bench-events with one event service
// (test.record writing to /dev/null) subscribed to bench.events.*; a
// sbus::Sender publishes to bench.events.created (persistent, mandatory,
// with publisher confirms). An event counts once sbusd's sbus.stats says
// its service handled it (after on_event returned; sbusd acks then).
// Floor: rabbitmq-c alone publishes a body of the same size the same way to
// a durable topic exchange bound to one durable classic queue, and a second
// connection consumes it (prefetch 64, as sbusd) and acks each message.
//
// "K in flight": K publishes, then their K confirms, again and again
// (Sender::publish_async then wait_published; the floor the same). A run
// publishes for S seconds (default 1) and ends when the last event is
// handled; its rate is events / (last handled - first published). Each
// figure is the median of N runs (default 7; --quick: 3 runs of 0.3 s),
// floor and sbus alternating.
#include <amqp.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sbus/sender.hpp>

#include "child_process.hpp"
#include "raw_amqp.hpp"
#include "run_stats.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kNode = "bench-events";
constexpr const char* kService = "bench.sink";
constexpr const char* kTopic = "bench.events.created";
constexpr const char* kSecret = "sbus-events-bench secret, 16 bytes or more";
constexpr const char* kFloorExchange = "bench.floor.events";
constexpr const char* kFloorQueue = "bench.floor.events";
constexpr double kGoal = 0.9;

struct Options {
  int port = 0;
  std::string sbusd;
  std::string plugin_dir;
  int runs = 7;
  double seconds = 1.0;
};

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// The floor's publisher: rabbitmq-c, one connection, confirms on channel 2.
class FloorPublisher {
 public:
  FloorPublisher(int port, std::string body) : connection_(port), body_(std::move(body)) {
    amqp_connection_state_t c = connection_.get();
    amqp_exchange_declare(c, bench::kRpcChannel, amqp_cstring_bytes(kFloorExchange), amqp_cstring_bytes("topic"), 0, 1,
                          0, 0, amqp_empty_table);
    connection_.check("declare " + std::string(kFloorExchange));
    connection_.declare_queue(kFloorQueue);
    amqp_queue_bind(c, bench::kRpcChannel, amqp_cstring_bytes(kFloorQueue), amqp_cstring_bytes(kFloorExchange),
                    amqp_cstring_bytes("bench.events.*"), amqp_empty_table);
    connection_.check("bind " + std::string(kFloorQueue));
    amqp_channel_open(c, bench::kConfirmChannel);
    connection_.check("channel.open");
    amqp_confirm_select(c, bench::kConfirmChannel);
    connection_.check("confirm.select");
  }

  // Publishes `count` messages, then waits for their confirms.
  void publish(int count) {
    amqp_connection_state_t c = connection_.get();
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    for (int i = 0; i < count; ++i) {
      connection_.check_status(amqp_basic_publish(c, bench::kConfirmChannel, amqp_cstring_bytes(kFloorExchange),
                                                  amqp_cstring_bytes(kTopic), 1, 0, &props, bench::bytes(body_)),
                               "publish");
    }
    published_ += static_cast<std::uint64_t>(count);
    while (confirmed_ < published_) wait_confirm();
  }

 private:
  void wait_confirm() {
    amqp_connection_state_t c = connection_.get();
    amqp_frame_t frame;
    timeval wait{10, 0};
    connection_.check_status(amqp_simple_wait_frame_noblock(c, &frame, &wait), "wait for confirm");
    if (frame.frame_type != AMQP_FRAME_METHOD) return;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_ACK_METHOD: {
        const auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        confirmed_ = ack->multiple ? ack->delivery_tag : std::max(confirmed_, ack->delivery_tag);
        return;
      }
      case AMQP_BASIC_RETURN_METHOD: throw std::runtime_error("floor: a message came back unroutable");
      case AMQP_BASIC_NACK_METHOD: throw std::runtime_error("floor: a message was nacked");
      default: throw std::runtime_error("floor: the broker closed the channel or connection");
    }
  }

  bench::RawConnection connection_;
  std::string body_;
  std::uint64_t published_ = 0;
  std::uint64_t confirmed_ = 0;
};

// The floor's consumer, on a thread of its own: prefetch 64, an ack per
// message, as sbusd consumes an event queue.
class FloorConsumer {
 public:
  explicit FloorConsumer(int port) : connection_(port) {
    amqp_basic_qos(connection_.get(), bench::kRpcChannel, 0, 64, 0);
    connection_.check("basic.qos");
    amqp_basic_consume(connection_.get(), bench::kRpcChannel, amqp_cstring_bytes(kFloorQueue), amqp_empty_bytes, 0, 0,
                       0, amqp_empty_table);
    connection_.check("consume " + std::string(kFloorQueue));
    thread_ = std::thread([this] { consume(); });
  }
  ~FloorConsumer() {
    stop_ = true;
    thread_.join();
  }
  std::uint64_t consumed() const { return consumed_; }

 private:
  void consume() {
    while (!stop_) {
      amqp_maybe_release_buffers(connection_.get());
      amqp_envelope_t envelope;
      timeval wait{0, 100000};
      const amqp_rpc_reply_t reply = amqp_consume_message(connection_.get(), &envelope, &wait, 0);
      if (reply.reply_type != AMQP_RESPONSE_NORMAL) continue;
      amqp_basic_ack(connection_.get(), bench::kRpcChannel, envelope.delivery_tag, 0);
      amqp_destroy_envelope(&envelope);
      ++consumed_;
    }
  }

  bench::RawConnection connection_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> consumed_{0};
};

// sbusd serving the event service, for the whole benchmark.
class Agent {
 public:
  Agent(const Options& options, const sbus::SenderOptions& sender_options)
      : dir_("/tmp/sbus-events-bench." + std::to_string(::getpid())), stats_(sender_options) {
    std::filesystem::create_directories(dir_);
    const std::string config = dir_ + "/sbusd.yaml";
    std::ofstream(config) << "node: " << kNode << "\nbrokers: [" << sender_options.brokers[0] << "]\nsecret: \""
                          << kSecret << "\"\nplugin_dir: " << std::filesystem::absolute(options.plugin_dir).string()
                          << "\nlog_level: warn\nservices:\n  - name: " << kService
                          << "\n    plugin: test\n    export: record\n    kind: event\n    topics: [\"bench.events.*\"]"
                          << "\n    options:\n      file: /dev/null\n";
    bench::SpawnOptions spawn;
    spawn.args = {options.sbusd, "--config", config};
    pid_ = bench::spawn(spawn);
    bool up = false;
    for (int attempt = 0; attempt < 60 && !up; ++attempt) {
      try {
        up = stats_.ping(kNode, 1s);
      } catch (const sbus::SenderError&) {
        std::this_thread::sleep_for(500ms);
      }
    }
    if (!up) throw std::runtime_error("sbusd did not answer PING within 30 s");
  }
  ~Agent() {
    bench::stop_process(pid_, 10s);
    std::filesystem::remove_all(dir_);
  }

  // How many events the service has handled, from sbus.stats.
  std::uint64_t handled() {
    const sbus::CallResult result = stats_.call(std::string(kNode) + ".sbus.stats", "[]", 10s);
    rapidjson::Document stats;
    stats.Parse(result.message.c_str());
    if (!result.ok() || !stats.IsObject() || !stats.HasMember("services") || !stats["services"].HasMember(kService)) {
      throw std::runtime_error("sbus.stats of " + std::string(kNode) + ": " + result.message);
    }
    return stats["services"][kService]["handled"].GetUint64();
  }

 private:
  std::string dir_;
  sbus::Sender stats_;
  pid_t pid_ = -1;
};

// Publishes in batches of `in_flight` for `seconds`, then waits until
// `handled()` reaches what was published; events per second.
template <typename Publish, typename Handled>
double one_run(int in_flight, double seconds, Publish publish, Handled handled) {
  const std::uint64_t before = handled();
  const Clock::time_point start = Clock::now();
  std::uint64_t sent = 0;
  while (seconds_between(start, Clock::now()) < seconds) {
    publish(in_flight);
    sent += static_cast<std::uint64_t>(in_flight);
  }
  const Clock::time_point deadline = Clock::now() + 60s;
  while (handled() - before < sent) {
    if (Clock::now() > deadline) throw std::runtime_error("events not handled within 60 s of the run");
    // sbus asks sbus.stats, a call: not so often that the asking slows it.
    std::this_thread::sleep_for(5ms);
  }
  return static_cast<double>(sent) / seconds_between(start, Clock::now());
}

int run(const Options& options) {
  sbus::SenderOptions sender_options;
  sender_options.brokers = {"amqp://guest:guest@127.0.0.1:" + std::to_string(options.port) + "/%2f"};
  sender_options.secret = kSecret;
  Agent agent(options, sender_options);
  sbus::Sender publisher(sender_options);
  // The floor's body: about as long as the event sbus puts on the wire for
  // "[]" (an XML event with a compat token).
  const std::string params = "[]";
  FloorPublisher floor(options.port, std::string(300, 'x'));
  FloorConsumer consumer(options.port);

  const auto sbus_publish = [&](int count) {
    if (count == 1) {
      if (!publisher.publish(kTopic, params)) throw std::runtime_error("nobody subscribed to " + std::string(kTopic));
      return;
    }
    for (int i = 0; i < count; ++i) publisher.publish_async(kTopic, params);
    if (publisher.wait_published(10s) != 0) throw std::runtime_error("events came back unrouted");
  };
  const auto sbus_handled = [&] { return agent.handled(); };
  const auto floor_publish = [&](int count) { floor.publish(count); };
  const auto floor_handled = [&] { return consumer.consumed(); };

  std::printf(
      "sbus-events-bench: events published with confirms to one subscriber and handled; floor = rabbitmq-c\n"
      "publish to a topic exchange, one durable queue, consume and ack; median of %d runs of %.1f s\n\n",
      options.runs, options.seconds);
  std::printf("%-34s %9s %9s %7s  %s\n", "figure", "floor", "sbus", "ratio", "target");
  int missed = 0;
  for (const int in_flight : {1, 64}) {
    std::vector<double> floor_rates;
    std::vector<double> sbus_rates;
    // One unmeasured run each: connections, queues and caches warm.
    one_run(in_flight, options.seconds / 4, floor_publish, floor_handled);
    one_run(in_flight, options.seconds / 4, sbus_publish, sbus_handled);
    for (int i = 0; i < options.runs; ++i) {
      floor_rates.push_back(one_run(in_flight, options.seconds, floor_publish, floor_handled));
      sbus_rates.push_back(one_run(in_flight, options.seconds, sbus_publish, sbus_handled));
    }
    const double floor_rate = bench::median(floor_rates);
    const double sbus_rate = bench::median(sbus_rates);
    const double ratio = floor_rate > 0 ? sbus_rate / floor_rate : 0;
    const bool ok = ratio >= kGoal;
    missed += ok ? 0 : 1;
    std::printf("%-34s %9.0f %9.0f %7.2f  >= %.2fx %s\n", (std::to_string(in_flight) + " in flight, events/s").c_str(),
                floor_rate, sbus_rate, ratio, kGoal, ok ? "ok" : "MISSED");
    std::fflush(stdout);
  }
  std::printf("\n%d target(s) missed\n", missed);
  return 0;
}

const char* const kUsage =
    "usage: sbus-events-bench --port PORT --sbusd PATH --plugin-dir DIR [--quick] [--runs N] [--seconds S]\n";

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--port" && i + 1 < argc) {
      options.port = std::atoi(argv[++i]);
    } else if (arg == "--sbusd" && i + 1 < argc) {
      options.sbusd = argv[++i];
    } else if (arg == "--plugin-dir" && i + 1 < argc) {
      options.plugin_dir = argv[++i];
    } else if (arg == "--runs" && i + 1 < argc) {
      options.runs = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--seconds" && i + 1 < argc) {
      options.seconds = std::max(0.05, std::atof(argv[++i]));
    } else if (arg == "--quick") {
      options.runs = 3;
      options.seconds = 0.3;
    } else {
      std::fputs(kUsage, stderr);
      return 2;
    }
  }
  if (options.port <= 0 || options.sbusd.empty() || options.plugin_dir.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sbus-events-bench: %s\n", e.what());
    return 1;
  }
}
