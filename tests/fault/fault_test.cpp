// Fault tests: real RabbitMQ nodes killed, frozen, cut off and clustered
// under a running sbusd. Each test starts its own private nodes (never the
// fixture's shared broker, since it kills them), prints its figures on
// stdout as lines starting with "[fault]", and fails on any lost call or
// message. Every wait has a deadline and every loop a count.
//
// The ping watcher is set to ping_interval 1 s, ping_timeout 1.5 s where the
// test measures detection (printed with the figures).
//
// This file: the broker killed, frozen, cut off, failed over, clustered and
// under a memory alarm. Messages under worker kills are in
// message_fault_test.cpp, handled once under every kill in
// handled_once_fault_test.cpp; what they share is fault_harness.hpp.
#include <amqp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <exception>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fault_harness.hpp"
#include "harness.hpp"
#include "tcp_proxy.hpp"

namespace sbus_test {

TEST_CASE("sbusd serves again within 1 s of a SIGKILLed broker accepting connections again", "[fault]") {
  Broker broker("kill");
  broker.start();
  Daemon daemon({broker.uri()}, kPingYaml);
  daemon.wait_ready();
  {
    sbus::Sender sender(daemon.sender_options());
    REQUIRE(add_ok(sender, daemon, 1, 2, 5s));
  }

  const auto killed_at = Clock::now();
  broker.kill();
  // The same node, port and folder again (fresh mnesia: the worker must
  // declare the exchange and its queue anew), while we watch the port.
  std::exception_ptr start_error;
  std::thread restart([&] {
    try {
      broker.start();
    } catch (...) {
      start_error = std::current_exception();
    }
  });
  const bool accepts = wait_until([&] { return port_accepts(broker.port()); }, 90s, 5ms);
  const auto accepting_at = Clock::now();
  const double down_s = std::chrono::duration<double>(accepting_at - killed_at).count();
  std::optional<double> recovery;
  if (accepts) recovery = time_until_served(daemon, {broker.uri()}, 30s);
  restart.join();
  if (start_error) std::rethrow_exception(start_error);
  REQUIRE(accepts);

  const std::string log = daemon.log();
  print_figures("broker SIGKILL+restart", {{"ping_interval_s", fixed(kPingIntervalS, 1)},
                                           {"ping_timeout_s", fixed(kPingTimeoutS, 1)},
                                           {"broker_down_s", fixed(down_s)},
                                           {"reconnect_attempts", std::to_string(count_of(log, "reconnecting to "))},
                                           {"seconds_to_recover", recovery ? fixed(*recovery) : "never(30s)"},
                                           {"attempted", "1"},
                                           {"succeeded", recovery ? "1" : "0"},
                                           {"failed", recovery ? "0" : "1"},
                                           {"lost", "0"}});
  if (!recovery || *recovery >= 1.0) {
    std::cout << "sbusd log (last 40 lines):\n" << tail_lines(log, 40) << std::endl;
  }
  REQUIRE(recovery.has_value());
  CHECK(*recovery < 1.0);
}

TEST_CASE("a broker frozen by SIGSTOP is noticed within ping_interval + ping_timeout and served again after SIGCONT",
          "[fault]") {
  Broker broker("stop");
  broker.start();
  Daemon daemon({broker.uri()}, kPingYaml);
  daemon.wait_ready();
  {
    sbus::Sender sender(daemon.sender_options());
    REQUIRE(add_ok(sender, daemon, 1, 2, 5s));
  }

  LogWatch watch(daemon);
  const auto stopped_at = Clock::now();
  broker.signal(SIGSTOP);
  const bool noticed = wait_until([&] { return watch.seen("ping: no answer"); }, 9s, 5ms);
  const double detect_s = seconds_since(stopped_at);
  // Frozen 10 s in all.
  std::this_thread::sleep_until(stopped_at + 10s);
  broker.signal(SIGCONT);
  const std::optional<double> recovery = time_until_served(daemon, {broker.uri()}, 30s, 500ms);

  const double limit_s = kPingIntervalS + kPingTimeoutS;
  print_figures("broker SIGSTOP 10s", {{"ping_interval_s", fixed(kPingIntervalS, 1)},
                                       {"ping_timeout_s", fixed(kPingTimeoutS, 1)},
                                       {"detected", noticed ? "yes" : "no"},
                                       {"seconds_to_detect", noticed ? fixed(detect_s) : "never(9s)"},
                                       {"detect_limit_s", fixed(limit_s + 0.25, 2)},
                                       {"seconds_to_recover_after_SIGCONT", recovery ? fixed(*recovery) : "never(30s)"},
                                       {"attempted", "1"},
                                       {"succeeded", recovery ? "1" : "0"},
                                       {"failed", recovery ? "0" : "1"},
                                       {"lost", "0"}});
  if (!noticed || detect_s > limit_s + 0.25 || !recovery || *recovery > 5.0) {
    std::cout << "sbusd log since SIGSTOP:\n" << watch.since() << std::endl;
  }
  CHECK(noticed);
  // 0.25 s of slack for scheduling and our own polling of the log.
  CHECK(detect_s <= limit_s + 0.25);
  REQUIRE(recovery.has_value());
  CHECK(*recovery < 5.0);
}

TEST_CASE("a link that silently drops everything is noticed by the ping watcher and the worker reconnects", "[fault]") {
  Broker broker("cut");
  broker.start();
  TcpProxy proxy(broker.port());
  // sbusd goes through the proxy; the test's senders go to the broker
  // directly, where the node's queue is the same.
  Daemon daemon({proxy.uri()}, kPingYaml);
  daemon.wait_ready({broker.uri()});
  {
    sbus::Sender sender(daemon.sender_options({broker.uri()}));
    REQUIRE(add_ok(sender, daemon, 1, 2, 5s));
  }
  REQUIRE(count_of(daemon.log(), "connected to ") == 1);

  LogWatch watch(daemon);
  const auto cut_at = Clock::now();
  proxy.blackhole(true);
  const bool noticed = wait_until([&] { return watch.seen("ping: no answer"); }, 9s, 5ms);
  const double detect_s = seconds_since(cut_at);
  proxy.blackhole(false);
  const auto restored_at = Clock::now();
  const std::optional<double> recovery = time_until_served(daemon, {broker.uri()}, 30s, 500ms);
  const bool reconnected = wait_until([&] { return count_of(daemon.log(), "connected to ") >= 2; }, 15s);
  const double reconnect_s = seconds_since(restored_at);

  const double limit_s = kPingIntervalS + kPingTimeoutS;
  print_figures("link blackholed", {{"ping_interval_s", fixed(kPingIntervalS, 1)},
                                    {"ping_timeout_s", fixed(kPingTimeoutS, 1)},
                                    {"detected", noticed ? "yes" : "no"},
                                    {"seconds_to_detect", noticed ? fixed(detect_s) : "never(9s)"},
                                    {"detect_limit_s", fixed(limit_s + 0.25, 2)},
                                    {"seconds_to_recover_after_restore", recovery ? fixed(*recovery) : "never(30s)"},
                                    {"reconnected", reconnected ? "yes" : "no"},
                                    {"seconds_to_connected_line", fixed(reconnect_s)},
                                    {"proxy_connections", std::to_string(proxy.accepted())},
                                    {"attempted", "1"},
                                    {"succeeded", recovery ? "1" : "0"},
                                    {"failed", recovery ? "0" : "1"},
                                    {"lost", "0"}});
  if (!noticed || detect_s > limit_s + 0.25 || !recovery || !reconnected) {
    std::cout << "sbusd log since the cut:\n" << watch.since() << std::endl;
  }
  CHECK(noticed);
  CHECK(detect_s <= limit_s + 0.25);
  CHECK(recovery.has_value());
  CHECK(reconnected);
  // The new connection went through the proxy again.
  bool via_proxy = false;
  {
    std::istringstream lines(watch.since());
    std::string line;
    while (std::getline(lines, line)) {
      if (line.find("connected to ") != std::string::npos &&
          line.find(":" + std::to_string(proxy.port()) + "/") != std::string::npos) {
        via_proxy = true;
      }
    }
  }
  CHECK(via_proxy);
}

TEST_CASE("calls with retry 1 fail over to the second broker when the first is SIGKILLed, without a failure",
          "[fault]") {
  Broker a("fo-a");
  Broker b("fo-b");
  start_all({&a, &b});
  Daemon daemon({a.uri(), b.uri()}, kPingYaml);
  daemon.wait_ready();

  CallStats stats;
  std::atomic<bool> stop{false};
  constexpr long kTotal = 3000;
  std::thread caller([&] {
    call_loop(daemon, daemon.sender_options({a.uri(), b.uri()}, 1), kTotal, 90s, 5s, stop, stats);
  });
  const bool halfway = wait_until([&] { return stats.attempted >= kTotal / 3 || stats.failed > 0; }, 60s, 1ms);
  const long before_kill = stats.succeeded;
  mark(stats);
  a.kill();
  caller.join();

  std::optional<double> first_after;
  {
    std::lock_guard<std::mutex> lock(stats.mutex);
    first_after = stats.first_success_after_mark_s;
  }
  print_figures("failover A->B, retry 1", {{"attempted", std::to_string(stats.attempted)},
                                           {"succeeded", std::to_string(stats.succeeded)},
                                           {"failed", std::to_string(stats.failed)},
                                           {"lost", std::to_string(stats.attempted - stats.succeeded)},
                                           {"succeeded_before_kill", std::to_string(before_kill)},
                                           {"succeeded_after_kill", std::to_string(stats.succeeded_after_mark)},
                                           {"longest_call_s", fixed(stats.longest_us / 1e6)},
                                           {"seconds_to_recover", first_after ? fixed(*first_after) : "never"}});
  INFO("errors:" << errors_text(stats));
  REQUIRE(halfway);
  CHECK(stats.attempted >= 2000);
  CHECK(stats.failed == 0);
  CHECK(stats.succeeded == stats.attempted);
  CHECK(stats.succeeded_after_mark >= 1000);
}

TEST_CASE("with a quorum node queue on a three-node cluster, calls go on when a node is SIGKILLed", "[fault]") {
  Broker a("a");
  Broker b("b");
  Broker c("c");
  const auto boot_start = Clock::now();
  start_all({&a, &b, &c});
  // B, then C, join A (stop_app, join_cluster, start_app). One at a time:
  // two nodes joining at once can make mnesia fail to start on a loaded
  // machine; start_app is retried for the same reason.
  std::vector<std::string> join_errors(2);
  const std::vector<Broker*> joiners = {&b, &c};
  for (std::size_t j = 0; j < joiners.size(); ++j) {
    const std::vector<std::vector<std::string>> steps = {
        {"stop_app"}, {"join_cluster", a.erlang_node()}, {"start_app"}};
    for (const std::vector<std::string>& args : steps) {
      ProcessResult result = joiners[j]->ctl(args);
      for (int retry = 0; result.exit_code != 0 && args[0] == "start_app" && retry < 3; ++retry) {
        std::this_thread::sleep_for(2s);
        result = joiners[j]->ctl(args);
      }
      if (result.exit_code != 0) {
        join_errors[j] =
            "rabbitmqctl -n " + joiners[j]->erlang_node() + " " + args[0] + ":\n" + result.out + result.err;
        break;
      }
    }
  }
  INFO(join_errors[0] << join_errors[1]);
  REQUIRE(join_errors[0].empty());
  REQUIRE(join_errors[1].empty());
  const ProcessResult status = a.ctl({"-q", "cluster_status", "--formatter", "json"});
  INFO(status.out << status.err);
  REQUIRE(status.out.find(b.erlang_node()) != std::string::npos);
  REQUIRE(status.out.find(c.erlang_node()) != std::string::npos);
  const double boot_s = seconds_since(boot_start);

  Daemon daemon({a.uri(), b.uri(), c.uri()}, std::string(kPingYaml) + "queue_type: quorum\n");
  try {
    daemon.wait_ready();
  } catch (const std::exception&) {
    if (daemon.log().find("queue_type") != std::string::npos) {
      FAIL("feature missing (not a fault): sbusd refuses `queue_type: quorum`. Log:\n" << daemon.log());
    }
    throw;
  }
  const ProcessResult queues = a.ctl({"-q", "list_queues", "name", "type", "leader", "members"});
  std::cout << "[fault]   queues on the cluster:\n" << queues.out;
  CHECK(queues.out.find(daemon.node()) != std::string::npos);
  bool quorum = false;
  {
    std::istringstream lines(queues.out);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind(daemon.node() + "\t", 0) == 0 && line.find("quorum") != std::string::npos) quorum = true;
    }
  }
  CHECK(quorum);

  CallStats stats;
  std::atomic<bool> stop{false};
  constexpr long kTotal = 2500;
  std::thread caller([&] {
    call_loop(daemon, daemon.sender_options({a.uri(), b.uri(), c.uri()}, 2), kTotal, 60s, 3s, stop, stats);
  });
  const bool started = wait_until([&] { return stats.attempted >= 500 || stats.failed > 0; }, 30s, 1ms);
  const long before_kill = stats.succeeded;
  // A caller connected to A with calls running on the workers when A dies
  // (its replies then go to a direct reply-to address on a dead node): the
  // callers of the other nodes must not notice.
  sbus::Sender stranded(daemon.sender_options({a.uri()}));
  for (int i = 0; i < 6; ++i) stranded.call_async(daemon.address("test.sleep"), "[1]");
  std::this_thread::sleep_for(300ms);
  mark(stats);
  // A: the node the sender, the stranded caller and the first worker use.
  LogWatch watch(daemon);
  const auto killed_at = Clock::now();
  a.kill();
  caller.join();
  const double window_s = seconds_since(killed_at);
  // Connections the workers made after the kill (only A's worker should
  // have to reconnect, once A is back: it is not).
  const std::size_t connects_after_kill = count_of(watch.since(), "connected to ");
  const std::size_t closed_by_broker = count_of(watch.since(), "broker closed the connection");
  // RabbitMQ 3.10 crashes the channel that publishes to a direct reply-to
  // address of a channel on a node that is down (rabbit_channel:deliver_reply,
  // case_clause), and closes the connection with INTERNAL_ERROR.
  const std::size_t reply_to_crashes = count_of(b.log(), "deliver_reply") + count_of(c.log(), "deliver_reply");

  std::optional<double> first_after;
  {
    std::lock_guard<std::mutex> lock(stats.mutex);
    first_after = stats.first_success_after_mark_s;
  }
  print_figures("quorum cluster, node A SIGKILLed, retry 2",
                {{"cluster_setup_s", fixed(boot_s, 1)},
                 {"attempted", std::to_string(stats.attempted)},
                 {"succeeded", std::to_string(stats.succeeded)},
                 {"failed", std::to_string(stats.failed)},
                 {"lost", std::to_string(stats.attempted - stats.succeeded)},
                 {"succeeded_before_kill", std::to_string(before_kill)},
                 {"succeeded_after_kill", std::to_string(stats.succeeded_after_mark)},
                 {"longest_call_s", fixed(stats.longest_us / 1e6)},
                 {"seconds_to_recover", first_after ? fixed(*first_after) : "never"},
                 {"seconds_after_kill", fixed(window_s, 1)},
                 {"worker_connects_after_kill", std::to_string(connects_after_kill)},
                 {"connections_closed_by_broker", std::to_string(closed_by_broker)},
                 {"deliver_reply_crash_lines_in_B_C_logs", std::to_string(reply_to_crashes)}});
  INFO("errors:" << errors_text(stats));
  if (stats.failed > 0) {
    const ProcessResult queues =
        b.ctl({"-q", "list_queues", "name", "leader", "consumers", "messages_ready", "messages_unacknowledged"});
    const ProcessResult consumers = b.ctl({"-q", "list_consumers"});
    std::cout << "[fault]   after the kill, queues:\n"
              << queues.out << "[fault]   consumers:\n"
              << consumers.out << "sbusd log (last 40 lines):\n"
              << tail_lines(daemon.log(), 40) << std::endl;
  }
  REQUIRE(started);
  CHECK(stats.failed == 0);
  CHECK(stats.succeeded_after_mark >= 1000);
  // A worker whose connection the broker closes right after connecting
  // backs off (100 ms doubling) instead of reconnecting at once.
  CHECK(connects_after_kill <= 30);
}

}  // namespace sbus_test

namespace sbus_test {
namespace {

// Puts a broker's memory watermark back to RabbitMQ's default when the test
// ends, also when it fails half-way.
class WatermarkRestore {
 public:
  explicit WatermarkRestore(const Broker& broker) : broker_(broker) {}
  ~WatermarkRestore() { broker_.ctl({"set_vm_memory_high_watermark", "0.4"}); }
  WatermarkRestore(const WatermarkRestore&) = delete;
  WatermarkRestore& operator=(const WatermarkRestore&) = delete;

 private:
  const Broker& broker_;
};

}  // namespace

TEST_CASE("with the first broker frozen by SIGSTOP, sbus call through both brokers answers well under a second",
          "[fault]") {
  // A: a private node, frozen; B: the fixture's broker, where the node is
  // served. A frozen broker's kernel still completes the TCP connect: only
  // the AMQP handshake hangs.
  Broker a("frozen");
  a.start();
  Daemon daemon({broker_uri()}, "");
  daemon.wait_ready();
  a.signal(SIGSTOP);
  std::vector<double> seconds;
  std::vector<ProcessResult> results;
  for (int i = 0; i < 3; ++i) {
    const auto started = Clock::now();
    results.push_back(run_cli({"call", daemon.address("math.add"), "[1, 2]", "--timeout", "5", "--broker", a.uri(),
                               "--broker", broker_uri(), "--secret-file", daemon.secret_file()},
                              20s));
    seconds.push_back(seconds_since(started));
  }
  a.signal(SIGCONT);
  print_figures("first broker frozen (SIGSTOP), sbus call with both", {{"call_1_s", fixed(seconds[0])},
                                                                       {"call_2_s", fixed(seconds[1])},
                                                                       {"call_3_s", fixed(seconds[2])},
                                                                       {"connect_timeout_s", "3"}});
  for (std::size_t i = 0; i < results.size(); ++i) {
    INFO("call " << i + 1 << ": exit " << results[i].exit_code << ", out " << results[i].out << ", err "
                 << results[i].err);
    CHECK(results[i].exit_code == 0);
    CHECK(trimmed(results[i].out) == "3");
    // The head start is 0.25 s; a process start and a call add little.
    CHECK(seconds[i] < 1.0);
  }
}

TEST_CASE(
    "a broker under a memory alarm: callers hear 'broker blocked', sbusd logs and counts the block, nothing is lost",
    "[fault]") {
  // The alarm on a private node; the fixture's broker as the second,
  // where the node is served too.
  Broker broker("alarm");
  broker.start();
  Daemon daemon({broker.uri(), broker_uri()}, kPingYaml);
  daemon.wait_ready();
  sbus::Sender stats_sender(daemon.sender_options({broker.uri()}));
  REQUIRE(add_ok(stats_sender, daemon, 1, 2, 5s));

  LogWatch watch(daemon);
  const WatermarkRestore restore(broker);
  REQUIRE(broker.ctl({"set_vm_memory_high_watermark", "absolute", "1"}).exit_code == 0);
  const bool alarm = wait_until(
      [&] {
        return broker.ctl({"-q", "eval", "rabbit_alarm:get_alarms()."}).out.find("memory") != std::string::npos;
      },
      30s, 200ms);
  REQUIRE(alarm);
  const auto alarm_at = Clock::now();

  // Callers that wait long enough: a call and a message sent during the
  // alarm both arrive once it clears.
  std::optional<sbus::CallResult> late_result;
  std::string late_error;
  std::thread late_call([&] {
    try {
      sbus::Sender sender(daemon.sender_options({broker.uri()}));
      late_result = sender.call(daemon.address("math.add"), "[20, 22]", 60s);
    } catch (const std::exception& e) {
      late_error = e.what();
    }
  });
  // A caller with a short timeout learns why it gets no answer.
  const auto cli_started = Clock::now();
  const ProcessResult blocked_call = run_cli({"call", daemon.address("math.add"), "[2, 3]", "--timeout", "2",
                                              "--broker", broker.uri(), "--secret-file", daemon.secret_file()},
                                             20s);
  const double cli_s = seconds_since(cli_started);
  // The same with --json: the error line names the block.
  const ProcessResult blocked_json = run_cli({"call", daemon.address("math.add"), "[2, 3]", "--timeout", "2", "--json",
                                              "--broker", broker.uri(), "--secret-file", daemon.secret_file()},
                                             20s);
  // A call that may run twice (--retry) and a message go to the second
  // broker at once.
  const auto retry_started = Clock::now();
  const ProcessResult retried_call =
      run_cli({"call", daemon.address("math.add"), "[3, 4]", "--timeout", "5", "--retry", "1", "--broker", broker.uri(),
               "--broker", broker_uri(), "--secret-file", daemon.secret_file()},
              20s);
  const double retry_s = seconds_since(retry_started);
  const auto failover_send_started = Clock::now();
  const ProcessResult failover_send =
      run_cli({"send", daemon.address("test.record"), "[\"sent to the other broker\"]", "--broker", broker.uri(),
               "--broker", broker_uri(), "--secret-file", daemon.secret_file()},
              20s);
  const double failover_send_s = seconds_since(failover_send_started);
  const bool logged_block = wait_until([&] { return watch.seen("blocked this connection"); }, 10s, 50ms);
  // The message is sent late in the alarm: its sender waits for the confirm
  // at most 10 s, and the steps above take longer than that on a loaded
  // machine.
  std::string send_error = "not done";
  std::thread late_send([&] {
    try {
      sbus::Sender sender(daemon.sender_options({broker.uri()}));
      sender.send(daemon.address("test.record"), "[\"sent during the alarm\"]");
      send_error.clear();
    } catch (const std::exception& e) {
      send_error = e.what();
    }
  });
  // Longer than ping_interval + ping_timeout: a blocked broker is not taken
  // for a hung one.
  std::this_thread::sleep_until(std::max(alarm_at + 3s, Clock::now()));
  const auto clearing_at = Clock::now();
  REQUIRE(broker.ctl({"set_vm_memory_high_watermark", "0.4"}).exit_code == 0);
  const double clear_ctl_s = seconds_since(clearing_at);
  const auto cleared_at = Clock::now();
  late_call.join();
  late_send.join();
  const double late_s = seconds_since(cleared_at);
  const double alarm_s = seconds_since(alarm_at);
  const bool recorded = wait_until(
      [&] { return read_file(daemon.record_file()).find("sent during the alarm") != std::string::npos; }, 10s);
  const bool recorded_elsewhere = read_file(daemon.record_file()).find("sent to the other broker") != std::string::npos;
  const bool logged_unblock = wait_until([&] { return watch.seen("unblocked this connection"); }, 10s, 50ms);
  const sbus::CallResult stats = stats_sender.call(daemon.address("sbus.stats"), "[]", 10s);
  const ProcessResult stats_table =
      run_cli({"stats", daemon.node(), "--broker", broker.uri(), "--secret-file", daemon.secret_file()}, 20s);

  print_figures("memory alarm", {{"cli_exit", std::to_string(blocked_call.exit_code)},
                                 {"cli_s", fixed(cli_s)},
                                 {"retry_cli_exit", std::to_string(retried_call.exit_code)},
                                 {"retry_cli_s", fixed(retry_s)},
                                 {"send_both_brokers_exit", std::to_string(failover_send.exit_code)},
                                 {"send_both_brokers_s", fixed(failover_send_s)},
                                 {"clear_ctl_s", fixed(clear_ctl_s)},
                                 {"late_call_answered_s_after_clear", fixed(late_s)},
                                 {"alarm_s", fixed(alarm_s)},
                                 {"message_recorded", recorded ? "yes" : "no"}});
  INFO("cli err: " << blocked_call.err << "\nlate call error: " << late_error << "\nsend error: " << send_error
                   << "\nstats: " << stats.message << "\nsbusd log since the alarm:\n"
                   << watch.since());
  CHECK(blocked_call.exit_code == 3);
  CHECK(blocked_call.err.find("broker blocked: ") != std::string::npos);
  CHECK(blocked_call.err.find("no reply") != std::string::npos);
  INFO("--json: " << blocked_json.out << blocked_json.err);
  CHECK(blocked_json.exit_code == 3);
  CHECK(blocked_json.out.empty());
  CHECK(blocked_json.err.rfind(R"({"error":{"code":"blocked","message":")", 0) == 0);
  CHECK(blocked_json.err.find(R"("exit":3,"exit_name":"timeout")") != std::string::npos);
  INFO("retried call: " << retried_call.out << retried_call.err << "\nsend: " << failover_send.out
                        << failover_send.err);
  CHECK(retried_call.exit_code == 0);
  CHECK(trimmed(retried_call.out) == "7");
  // Without failing over on the block notice, the call would wait for the
  // 1 s confirm before trying the second broker.
  CHECK(retry_s < 0.8);
  CHECK(failover_send.exit_code == 0);
  CHECK(failover_send_s < 3.0);
  CHECK(recorded_elsewhere);
  REQUIRE(late_result.has_value());
  CHECK(late_result->message == "42");
  CHECK(send_error.empty());
  CHECK(recorded);
  CHECK(logged_block);
  CHECK(logged_unblock);
  CHECK(!watch.seen("reconnecting"));
  CHECK(stats.message.find("\"blocked\":false") != std::string::npos);
  CHECK(stats.message.find("\"blocks\":0") == std::string::npos);
  INFO("sbus stats: " << stats_table.out << stats_table.err);
  CHECK(stats_table.out.find("blocked by the broker (resource alarm) ") != std::string::npos);
}

}  // namespace sbus_test
