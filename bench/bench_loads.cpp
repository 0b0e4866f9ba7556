// sbus-bench's loads that are more than one client: caller processes,
// message senders on threads of their own, and the start-up figure.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench.hpp"
#include "bench_util.hpp"
#include "child_process.hpp"
#include "drivers.hpp"

namespace bench {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

RunStats Bench::run_callers(System system, int processes) {
  struct Caller {
    pid_t pid = -1;
    int to = -1;    // its stdin
    int from = -1;  // its stdout
  };
  std::vector<Caller> callers;
  auto end_all = [&callers] {
    for (Caller& caller : callers) {
      if (caller.to >= 0) ::close(caller.to);
      if (caller.from >= 0) ::close(caller.from);
      if (caller.pid > 0) stop_process(caller.pid, 2s);
    }
  };
  try {
    const std::string target = system == System::kFloor ? floor_queue_ : node_ + ".math.add";
    const std::string file = system == System::kFloor ? body_file_ : secret_file_;
    char length[32];
    std::snprintf(length, sizeof(length), "%.3f", run_length_.count());
    for (int i = 0; i < processes; ++i) {
      int in[2];
      int out[2];
      if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
      SpawnOptions spawn_options;
      spawn_options.args = {fs::read_symlink("/proc/self/exe").string(),
                            "caller",
                            name_of(system),
                            std::to_string(options_.port),
                            target,
                            file,
                            length};
      spawn_options.stdin_fd = in[0];
      spawn_options.stdout_fd = out[1];
      Caller caller;
      caller.pid = spawn(spawn_options);
      ::close(in[0]);
      ::close(out[1]);
      caller.to = in[1];
      caller.from = out[0];
      callers.push_back(caller);
    }
    for (Caller& caller : callers) {
      pollfd fd{caller.from, POLLIN, 0};
      char byte = 0;
      if (::poll(&fd, 1, 30000) != 1 || !read_all(caller.from, &byte, 1) || byte != 'R') {
        throw std::runtime_error("a caller process did not get ready");
      }
    }
    RunStats total = timed(system, [&] {
      for (Caller& caller : callers) {
        char go = 'G';
        write_all(caller.to, &go, 1);
      }
      RunStats merged;
      for (Caller& caller : callers) {
        CallerHeader header;
        if (!read_all(caller.from, &header, sizeof(header))) throw std::runtime_error("a caller process failed");
        RunStats stats;
        stats.calls = header.calls;
        stats.errors = header.errors;
        stats.seconds = header.seconds;
        stats.latencies_ns.resize(header.latencies);
        if (!read_all(caller.from, stats.latencies_ns.data(), header.latencies * sizeof(std::uint64_t))) {
          throw std::runtime_error("a caller process failed");
        }
        merged.merge(std::move(stats));
      }
      return merged;
    });
    end_all();
    return total;
  } catch (...) {
    end_all();
    throw;
  }
}

RunStats Bench::run_senders(System system, int threads) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<bool> failed{false};
  std::vector<RunStats> results(static_cast<std::size_t>(threads));
  std::vector<std::string> errors(static_cast<std::size_t>(threads));
  const auto length = run_length_;
  auto body = [&](int index) {
    auto send_loop = [&](auto& client) {
      client.send_confirmed();  // connects
      ++ready;
      while (!go.load()) {
        if (failed.load()) return;
        std::this_thread::sleep_for(1ms);
      }
      RunStats& stats = results[static_cast<std::size_t>(index)];
      const auto start = Clock::now();
      const auto end = start + std::chrono::duration_cast<Clock::duration>(length);
      auto now = start;
      while (now < end) {
        client.send_confirmed();
        const auto done = Clock::now();
        stats.latencies_ns.push_back(
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(done - now).count()));
        ++stats.calls;
        now = done;
      }
      stats.seconds = seconds_between(start, now);
    };
    try {
      if (system == System::kFloor) {
        FloorClient client(options_.port, floor_queue_, body_);
        send_loop(client);
      } else {
        SbusClient client(sender_options(options_.port, secret_), {}, kParams, {}, node_ + ".bench.sink");
        send_loop(client);
      }
    } catch (const std::exception& e) {
      errors[static_cast<std::size_t>(index)] = e.what();
      failed = true;
      ++ready;
    }
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back(body, i);
  while (ready.load() < threads) std::this_thread::sleep_for(1ms);
  RunStats total = timed(system, [&] {
    go = true;
    for (std::thread& thread : pool) thread.join();
    RunStats merged;
    for (RunStats& stats : results) merged.merge(std::move(stats));
    return merged;
  });
  for (const std::string& error : errors) {
    if (!error.empty()) throw std::runtime_error(std::string(name_of(system)) + " sender: " + error);
  }
  wait_drained(system == System::kFloor ? floor_queue_ : node_);
  return total;
}

void Bench::measure_startup() {
  Row& first_call = add("start-up: exec to first call served", "ms", 1);
  first_call.max_value = 100;
  Row& ready = add("start-up: exec to READY=1 (sd_notify)", "ms", 1);
  std::cerr << "sbus-bench: start-up:";
  for (int run = 0; run < options_.startup_runs; ++run) {
    // The floor: a fresh queue, declared first so the call waits in it.
    {
      const std::string queue = floor_queue_ + "-start" + std::to_string(run);
      admin_->declare_node_queue(queue);
      queues_.push_back(queue);
      FloorClient client(options_.port, queue, body_);
      const auto start = Clock::now();
      const pid_t pid = start_floor(queue);
      client.roundtrip(kReplyTimeout);
      first_call.floor.push_back(seconds_between(start, Clock::now()) * 1000);
      stop_process(pid, 5s);
      std::cerr << " floor " << first_call.floor.back() << " ms";
    }
    {
      const std::string node = node_ + "-start" + std::to_string(run);
      const std::string config = write_config(node, "start" + std::to_string(run));
      // Both of its queues exist, as on any restart: creating a durable
      // queue is the broker's work, not sbusd's.
      admin_->declare_node_queue(node);
      admin_->declare_queue(node + ".error");
      queues_.push_back(node);
      queues_.push_back(node + ".error");
      const std::string socket_path = dir_ + "/notify" + std::to_string(run);
      const int notify = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      sockaddr_un address{};
      address.sun_family = AF_UNIX;
      std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", socket_path.c_str());
      if (notify < 0 || ::bind(notify, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        throw std::runtime_error("cannot bind " + socket_path + ": " + std::strerror(errno));
      }
      std::optional<Clock::time_point> ready_at;
      const auto start = Clock::now();
      std::thread listener([notify, &ready_at, start] {
        char buffer[4096];
        for (;;) {
          pollfd fd{notify, POLLIN, 0};
          const auto left = 15000 - std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
          if (left <= 0 || ::poll(&fd, 1, static_cast<int>(left)) != 1) return;
          const ssize_t n = ::recv(notify, buffer, sizeof(buffer), 0);
          if (n <= 0) return;
          const std::string message(buffer, static_cast<std::size_t>(n));
          if (message == "READY=1" || message.rfind("READY=1\n", 0) == 0 ||
              message.find("\nREADY=1") != std::string::npos) {
            ready_at = Clock::now();
            return;
          }
        }
      });
      const pid_t pid = start_sbusd(config, socket_path);
      try {
        sbus_client_->sender().call(node + ".math.add", kParams, kReplyTimeout);
      } catch (...) {
        listener.join();
        ::close(notify);
        stop_process(pid, 10s);
        throw;
      }
      first_call.sbus.push_back(seconds_between(start, Clock::now()) * 1000);
      listener.join();
      ::close(notify);
      if (ready_at) ready.sbus.push_back(seconds_between(start, *ready_at) * 1000);
      stop_process(pid, 15s);
      std::cerr << " sbus " << first_call.sbus.back() << " ms";
    }
  }
  std::cerr << "\n";
}

}  // namespace bench
