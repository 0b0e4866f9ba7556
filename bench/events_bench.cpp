// sbus-events-bench: events published with confirms to one event service
// and handled, beside the floor doing the same publish-consume-ack on one
// queue in the same run (docs/performance.md, "Events").
//
//   sbus-events-bench --port PORT --sbusd PATH --plugin-dir DIR [--quick]
//                     [--seconds S] [--in-flight K] [--burst B]
//
// sbus: sbusd serves the node bench-events with one event service
// (test.record appending a line per event, one write() each, to a file in
// /dev/shm that it keeps open)
// subscribed to bench.events.*; a sbus::Sender publishes to
// bench.events.created (persistent, mandatory, with publisher confirms). An
// event counts once its line is in the file (on_event wrote it; sbusd acks
// after on_event returns); at the end sbus.stats must agree.
// Floor: rabbitmq-c alone publishes a body of the same size the same way to
// a durable topic exchange bound to one durable classic queue, and a second
// connection consumes it (prefetch 64, as sbusd) and acks each message.
//
// "K in flight": K publishes, then their K confirms (Sender::publish_async
// then wait_published; the floor the same), B times: a burst, which ends
// when its last event is handled. Floor and sbus take bursts in turn
// (run_interleaved(), which goes first alternating) for S seconds (default
// 20; --quick: 2). The ratio is the median of the bursts' ratios (the floor
// burst's seconds over the sbus burst's beside it), with their quartiles:
// a slow spell of a shared machine lasts far longer than a burst, so it
// lands on both sides alike.
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

#include "bench_util.hpp"
#include "child_process.hpp"
#include "drivers.hpp"
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

struct Options : bench::SbusdOptions {
  double seconds = 20.0;
  int burst = 0;  // 0: 16 events a burst at 1 in flight, 2 batches above
  std::vector<int> in_flight = {1, 64};
};

std::uint64_t nanoseconds_since(Clock::time_point start) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
}

// Waits until count() reaches `target`, looking every 50 us: the same for
// both sides, and light enough for a 2-core machine.
template <typename Count>
void wait_for_count(Count count, std::uint64_t target) {
  const Clock::time_point deadline = Clock::now() + 60s;
  while (count() < target) {
    if (Clock::now() > deadline) throw std::runtime_error("events not handled within 60 s of their burst");
    std::this_thread::sleep_for(50us);
  }
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

// sbusd serving the event service, for the whole benchmark; its service
// appends one line per event to record_ (tmpfs when there is one).
class Agent {
 public:
  Agent(const Options& options, const sbus::SenderOptions& sender_options)
      : dir_("/tmp/sbus-events-bench." + std::to_string(::getpid())),
        record_((std::filesystem::is_directory("/dev/shm") ? std::string("/dev/shm") : dir_) + "/sbus-events-bench." +
                std::to_string(::getpid()) + ".jsonl"),
        stats_(sender_options) {
    std::filesystem::create_directories(dir_);
    const std::string config = dir_ + "/sbusd.yaml";
    std::ofstream(config) << "node: " << kNode << "\nbrokers: [" << sender_options.brokers[0] << "]\nsecret: \""
                          << kSecret << "\"\nstate_dir: " << dir_
                          << "\nplugin_dir: " << std::filesystem::absolute(options.plugin_dir).string()
                          << "\nlog_level: warn\nservices:\n  - name: " << kService
                          << "\n    plugin: test\n    export: record\n    kind: event\n    topics: [\"bench.events.*\"]"
                          << "\n    options:\n      file: " << record_ << "\n      keep_open: \"true\"\n";
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
    std::filesystem::remove(record_);
  }

  // How many events the service has recorded: its file's lines, all of one
  // length. A stat(), cheap enough to ask every 50 us.
  std::uint64_t recorded() const {
    std::error_code error;
    const std::uintmax_t size = std::filesystem::file_size(record_, error);
    return error ? 0 : size / kRecordLine.size();
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
  static inline const std::string kRecordLine = std::string("{\"topic\":\"") + kTopic + "\",\"params\":[]}\n";

  std::string dir_;
  std::string record_;
  sbus::Sender stats_;
  pid_t pid_ = -1;
};

// The two sides as run_interleaved() drives them: roundtrip() publishes
// `in_flight` events and waits for their confirms; settle() waits until all
// published so far are handled.
class FloorSide {
 public:
  FloorSide(FloorPublisher& publisher, FloorConsumer& consumer, int in_flight)
      : publisher_(publisher), consumer_(consumer), in_flight_(in_flight), published_(consumer.consumed()) {}
  std::uint64_t roundtrip(std::chrono::milliseconds) {
    const Clock::time_point start = Clock::now();
    publisher_.publish(in_flight_);
    published_ += static_cast<std::uint64_t>(in_flight_);
    return nanoseconds_since(start);
  }
  void settle() {
    wait_for_count([this] { return consumer_.consumed(); }, published_);
  }

 private:
  FloorPublisher& publisher_;
  FloorConsumer& consumer_;
  int in_flight_;
  std::uint64_t published_;
};

class SbusSide {
 public:
  SbusSide(sbus::Sender& sender, Agent& agent, int in_flight)
      : sender_(sender), agent_(agent), in_flight_(in_flight), published_(agent.recorded()) {}
  std::uint64_t roundtrip(std::chrono::milliseconds timeout) {
    const Clock::time_point start = Clock::now();
    if (in_flight_ == 1) {
      if (!sender_.publish(kTopic, "[]")) throw std::runtime_error("nobody subscribed to " + std::string(kTopic));
    } else {
      for (int i = 0; i < in_flight_; ++i) sender_.publish_async(kTopic, "[]");
      if (sender_.wait_published(timeout) != 0) throw std::runtime_error("events came back unrouted");
    }
    published_ += static_cast<std::uint64_t>(in_flight_);
    return nanoseconds_since(start);
  }
  void settle() {
    wait_for_count([this] { return agent_.recorded(); }, published_);
  }
  std::uint64_t published() const { return published_; }

 private:
  sbus::Sender& sender_;
  Agent& agent_;
  int in_flight_;
  std::uint64_t published_;
};

// One figure: the two sides interleaved burst by burst; false if missed.
bool figure(const Options& options, int in_flight, FloorSide& floor, SbusSide& sbus) {
  const int burst = options.burst > 0 ? options.burst : std::max(2, 16 / in_flight);
  // Unmeasured bursts first: connections, queues and caches warm.
  bench::run_interleaved(floor, sbus, 0s, burst);
  auto [floor_stats, sbus_stats] =
      bench::run_interleaved(floor, sbus, std::chrono::duration<double>(options.seconds), burst);
  std::vector<double> ratios;
  for (std::size_t i = 0; i < floor_stats.burst_seconds.size() && i < sbus_stats.burst_seconds.size(); ++i) {
    if (sbus_stats.burst_seconds[i] > 0) ratios.push_back(floor_stats.burst_seconds[i] / sbus_stats.burst_seconds[i]);
  }
  const double ratio = bench::median(ratios);
  const bool ok = ratio >= kGoal;
  std::printf("%-34s %9.0f %9.0f %7.2f  >= %.2fx %s\n", (std::to_string(in_flight) + " in flight, events/s").c_str(),
              floor_stats.rate() * in_flight, sbus_stats.rate() * in_flight, ratio, kGoal, ok ? "ok" : "MISSED");
  std::printf("%-34s %9.2f %9.2f          %s\n", "  p50 K publishes to confirms, ms",
              floor_stats.latency_us(0.5) / 1000, sbus_stats.latency_us(0.5) / 1000,
              bench::ratio_spread(ratios).c_str());
  std::fflush(stdout);
  return ok;
}

int run(const Options& options) {
  sbus::SenderOptions sender_options;
  sender_options.brokers = {"amqp://guest:guest@127.0.0.1:" + std::to_string(options.port) + "/%2f"};
  sender_options.secret = kSecret;
  Agent agent(options, sender_options);
  sbus::Sender publisher(sender_options);
  // The floor's body: about as long as the event sbus puts on the wire for
  // "[]" (an XML event with a compat token).
  FloorPublisher floor(options.port, std::string(300, 'x'));
  FloorConsumer consumer(options.port);

  std::printf(
      "sbus-events-bench: events published with confirms to one subscriber and handled; floor = rabbitmq-c\n"
      "publish to a topic exchange, one durable queue, consume and ack; the two interleaved burst by burst\n"
      "for %.1f s; ratio = median of the bursts' ratios\n\n",
      options.seconds);
  std::printf("%-34s %9s %9s %7s  %s\n", "figure", "floor", "sbus", "ratio", "target");
  const std::uint64_t handled_before = agent.handled();
  std::uint64_t published = 0;  // by sbus, in all figures
  int missed = 0;
  for (const int in_flight : options.in_flight) {
    FloorSide floor_side(floor, consumer, in_flight);
    SbusSide sbus_side(publisher, agent, in_flight);
    missed += figure(options, in_flight, floor_side, sbus_side) ? 0 : 1;
    published = sbus_side.published();
  }
  // Every event recorded was handled as sbusd counts it, too.
  wait_for_count([&] { return agent.handled() - handled_before; }, published);
  std::printf("\n%d target(s) missed\n", missed);
  return 0;
}

const char* const kUsage =
    "usage: sbus-events-bench --port PORT --sbusd PATH --plugin-dir DIR [--quick] [--seconds S]\n"
    "                         [--in-flight K] [--burst B]\n";

}  // namespace

int main(int argc, char** argv) {
  Options options;
  const bool ok = bench::parse_sbusd_options(argc, argv, &options, [&](const std::string& arg, const char* next) {
    if (arg == "--quick") {
      options.seconds = 2;
      return 0;
    }
    if (next == nullptr) return -1;
    if (arg == "--burst") {
      options.burst = std::max(1, std::atoi(next));
    } else if (arg == "--seconds") {
      options.seconds = std::max(0.05, std::atof(next));
    } else if (arg == "--in-flight") {
      options.in_flight = {std::max(1, std::atoi(next))};
    } else {
      return -1;
    }
    return 1;
  });
  if (!ok) {
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
