// Handled once under every kill (docs/reliability.md#handled-once): 10,000
// messages with ids through a recording service while the worker is
// SIGKILLed 5 times, every sbusd process is SIGKILLed once (as a power loss
// would end them) and started again on the same state_dir, and the broker
// is restarted once. No message may be lost, none handled twice.
//
// The faults come at random moments (a seeded order and thresholds, the
// seed printed; SBUS_FAULT_SEED repeats a run): each waits until the
// recorder has handled a random count, then a random few milliseconds more.
// The senders keep at most kAhead messages ahead of the recorder, so that
// every fault meets a stream of deliveries in flight.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fault_harness.hpp"
#include "harness.hpp"

namespace sbus_test {
namespace {

constexpr int kMessages = 10000;
constexpr int kWorkerKills = 5;
constexpr int kSenders = 4;
constexpr int kAhead = 1500;

enum class Fault { kWorker, kSbusd, kBroker };

const char* fault_name(Fault fault) {
  switch (fault) {
    case Fault::kWorker: return "worker SIGKILL";
    case Fault::kSbusd: return "SIGKILL of every sbusd process";
    case Fault::kBroker: return "broker restart";
  }
  return "?";
}

// The lines of the recorder's id file: each id once per run of its handler.
std::vector<std::string> ids_in(const std::string& path) {
  std::vector<std::string> ids;
  std::istringstream lines(read_file(path));
  for (std::string line; std::getline(lines, line);) ids.push_back(line);
  return ids;
}

std::size_t handled_count(const std::string& path) {
  return count_of(read_file(path), "\n");
}

// The faults in a random order, each with the handled count it waits for.
struct Plan {
  std::vector<Fault> faults;
  std::vector<int> at;
  std::vector<int> delay_ms;
};

Plan make_plan(std::mt19937& random) {
  Plan plan;
  plan.faults.assign(kWorkerKills, Fault::kWorker);
  plan.faults.push_back(Fault::kSbusd);
  plan.faults.push_back(Fault::kBroker);
  std::shuffle(plan.faults.begin(), plan.faults.end(), random);
  // Spread over 5%..90% of the messages, at least 400 apart.
  const int slots = static_cast<int>(plan.faults.size());
  const int span = (kMessages * 90 / 100 - kMessages * 5 / 100) / slots;
  std::uniform_int_distribution<int> within(0, span - 400);
  std::uniform_int_distribution<int> delay(0, 30);
  for (int i = 0; i < slots; ++i) {
    plan.at.push_back(kMessages * 5 / 100 + i * span + within(random));
    plan.delay_ms.push_back(delay(random));
  }
  return plan;
}

}  // namespace

TEST_CASE(
    "ten thousand messages with ids under 5 worker SIGKILLs, a SIGKILL of every sbusd process and a broker restart: "
    "none lost, none handled twice",
    "[fault][handled_once][.long]") {
  const char* seed_text = std::getenv("SBUS_FAULT_SEED");
  const unsigned seed = seed_text != nullptr ? static_cast<unsigned>(std::strtoul(seed_text, nullptr, 10))
                                             : static_cast<unsigned>(std::random_device{}());
  std::mt19937 random(seed);
  const Plan plan = make_plan(random);

  Broker broker("once");
  broker.start();
  TempDir files;
  const std::string id_file = files.file("ids.log");
  // crash_limit 0: five kills within a minute would otherwise switch the
  // recorder off (a crash cool-down), sending its messages to NODE.error.
  Daemon daemon({broker.uri()}, std::string(kPingYaml) + "crash_limit: 0\n",
                "  - {name: test.ids, plugin: test, export: record, kind: message, options: {file: " +
                    files.file("params.log") + ", id_file: " + id_file + "}}\n");
  daemon.wait_ready();
  const std::string address = daemon.address("test.ids");

  // The recorder's count, read every few ms by one thread for all.
  std::atomic<int> handled{0};
  std::atomic<bool> watching{true};
  std::thread watcher([&] {
    while (watching) {
      handled = static_cast<int>(handled_count(id_file));
      std::this_thread::sleep_for(3ms);
    }
  });
  std::atomic<int> sent{0};
  std::atomic<long> send_retries{0};
  std::atomic<bool> give_up{false};
  std::mutex error_mutex;
  std::string last_send_error;
  std::vector<std::thread> senders;
  // Whatever ends the test (a failed REQUIRE, a throw), the threads stop.
  struct Joiner {
    std::function<void()> stop;
    ~Joiner() { stop(); }
  } joiner{[&] {
    give_up = true;
    watching = false;
    for (std::thread& thread : senders) {
      if (thread.joinable()) thread.join();
    }
    if (watcher.joinable()) watcher.join();
  }};
  const auto start = Clock::now();
  for (int t = 0; t < kSenders; ++t) {
    senders.emplace_back([&, t] {
      std::optional<sbus::Sender> sender;
      for (int seq = t; seq < kMessages && !give_up; seq += kSenders) {
        while (!give_up && sent - handled > kAhead) {
          std::this_thread::sleep_for(2ms);
        }
        sbus::SendOptions options;
        options.message_id = "m-" + std::to_string(seq);
        // A send that fails (the broker restarts, a confirm is lost) is
        // sent again with the same id, as a careful client does.
        const auto deadline = Clock::now() + 90s;
        bool done = false;
        while (!done && !give_up && Clock::now() < deadline) {
          try {
            if (!sender) sender.emplace(daemon.sender_options());
            sender->send(address, "[" + std::to_string(seq) + "]", options);
            done = true;
          } catch (const sbus::SenderError& e) {
            ++send_retries;
            sender.reset();
            {
              std::lock_guard<std::mutex> lock(error_mutex);
              last_send_error = e.what();
            }
            std::this_thread::sleep_for(100ms);
          }
        }
        if (done) ++sent;
      }
    });
  }

  // The faults, in the plan's order; each once the node serves again after
  // the one before (its handled count moves).
  std::vector<std::string> notes;
  std::map<Fault, int> done_faults;
  std::vector<pid_t> killed_workers;
  for (std::size_t i = 0; i < plan.faults.size(); ++i) {
    const bool reached = wait_until([&] { return handled >= plan.at[i]; }, 120s, 1ms);
    if (!reached) {
      notes.push_back("fault " + std::to_string(i + 1) + ": handled count " + std::to_string(plan.at[i]) +
                      " not reached");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(plan.delay_ms[i]));
    const int handled_at = handled;
    const Fault fault = plan.faults[i];
    if (fault == Fault::kWorker) {
      pid_t victim = -1;
      wait_until(
          [&] {
            const std::vector<pid_t> workers = daemon.workers();
            if (workers.size() != 1 ||
                std::find(killed_workers.begin(), killed_workers.end(), workers[0]) != killed_workers.end()) {
              return false;
            }
            victim = workers[0];
            return true;
          },
          20s, 2ms);
      if (victim <= 0) {
        notes.push_back("fault " + std::to_string(i + 1) + ": no worker to kill");
        continue;
      }
      ::kill(victim, SIGKILL);
      killed_workers.push_back(victim);
    } else if (fault == Fault::kSbusd) {
      REQUIRE(daemon.kill_all());
      daemon.start();
    } else {
      broker.restart();
    }
    ++done_faults[fault];
    notes.push_back(std::string(fault_name(fault)) + " at handled=" + std::to_string(handled_at) +
                    " sent=" + std::to_string(sent.load()) + " t=" + fixed(seconds_since(start), 1) + "s");
    // Serving again: the count moves (or everything is handled).
    wait_until([&] { return handled > handled_at + 20 || handled >= kMessages; }, 60s, 5ms);
  }

  const bool all_sent = wait_until([&] { return sent == kMessages; }, 180s, 20ms);
  joiner.stop();

  // Every id at least once, then a while for late redeliveries.
  std::map<std::string, int> runs;
  int lost = kMessages;
  int twice = 0;
  auto tally = [&] {
    runs.clear();
    for (const std::string& id : ids_in(id_file)) ++runs[id];
    lost = 0;
    twice = 0;
    for (int seq = 0; seq < kMessages; ++seq) {
      const auto found = runs.find("m-" + std::to_string(seq));
      if (found == runs.end()) ++lost;
      if (found != runs.end() && found->second > 1) twice += found->second - 1;
    }
    return lost == 0;
  };
  const bool complete = wait_until(tally, 120s, 200ms);
  std::this_thread::sleep_for(2s);
  tally();
  const double total_s = seconds_since(start);
  const std::string log = daemon.log();

  print_figures("handled once, 10k messages with ids",
                {{"seed", std::to_string(seed)},
                 {"sent_confirmed", std::to_string(sent.load())},
                 {"send_retries", std::to_string(send_retries.load())},
                 {"worker_kills", std::to_string(done_faults[Fault::kWorker])},
                 {"sbusd_kills", std::to_string(done_faults[Fault::kSbusd])},
                 {"broker_restarts", std::to_string(done_faults[Fault::kBroker])},
                 {"lost", std::to_string(lost)},
                 {"handled_twice", std::to_string(twice)},
                 {"marked_returned_at_kills", std::to_string(count_of(log, "handler(s) with a message id"))},
                 {"taken_as_returned", std::to_string(count_of(log, "its handler had returned in a worker killed"))},
                 {"seconds", fixed(total_s, 1)}});
  for (const std::string& note : notes) std::cout << "[fault]   " << note << std::endl;
  if (!complete || twice > 0) {
    std::string detail;
    for (const auto& [id, count] : runs) {
      if (count > 1 && detail.size() < 400) detail += " " + id + "x" + std::to_string(count);
    }
    std::cout << "[fault]   handled more than once:" << detail << "\n[fault]   last send error: " << last_send_error
              << "\nsbusd log (last 60 lines):\n"
              << tail_lines(log, 60) << std::endl;
  }
  CHECK(all_sent);
  CHECK(done_faults[Fault::kWorker] == kWorkerKills);
  CHECK(done_faults[Fault::kSbusd] == 1);
  CHECK(done_faults[Fault::kBroker] == 1);
  CHECK(lost == 0);
  CHECK(twice == 0);
}

}  // namespace sbus_test
