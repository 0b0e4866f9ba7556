// The processes sbus-bench starts or is run as besides the table: a caller
// process of the fan-out figure, and a fixed load to profile a server under.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <algorithm>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "drivers.hpp"
#include "floor_client.hpp"
#include "sbus_client.hpp"

namespace bench {

// A caller process: connects, warms up, says 'R', waits for any byte on
// stdin, calls sequentially for SECONDS, writes its CallerHeader and
// latencies to stdout.
int caller_main(int argc, char** argv) {
  if (argc != 7) {
    std::cerr << "usage: sbus-bench caller floor|sbus PORT TARGET FILE SECONDS\n";
    return 2;
  }
  const std::string system = argv[2];
  const int port = std::atoi(argv[3]);
  const std::string target = argv[4];
  const std::string file = argv[5];
  const std::chrono::duration<double> duration(std::strtod(argv[6], nullptr));
  try {
    auto serve = [&](auto& client) {
      for (int i = 0; i < 20; ++i) client.roundtrip(kReplyTimeout);
      char byte = 'R';
      if (!write_all(STDOUT_FILENO, &byte, 1) || !read_all(STDIN_FILENO, &byte, 1)) return 1;
      RunStats stats = run_sequential(client, duration);
      CallerHeader header{stats.calls, 0, stats.seconds, stats.latencies_ns.size()};
      if constexpr (requires { client.errors(); }) header.errors = client.errors();
      const bool ok =
          write_all(STDOUT_FILENO, &header, sizeof(header)) &&
          write_all(STDOUT_FILENO, stats.latencies_ns.data(), stats.latencies_ns.size() * sizeof(std::uint64_t));
      return ok ? 0 : 1;
    };
    if (system == "floor") {
      FloorClient client(port, target, read_text(file));
      return serve(client);
    }
    SbusClient client(sender_options(port, trim(read_text(file))), {target}, kParams, kSum);
    return serve(client);
  } catch (const std::exception& e) {
    std::cerr << "sbus-bench caller (" << system << "): " << e.what() << "\n";
    return 1;
  }
}

// Extra words after DEPTH: `no-deadline`, and `echo=BYTES` (params of
// BYTES, which the address (test.echo) answers unchanged).
int load_main(int argc, char** argv) {
  bool no_deadline = false;
  bool no_id = false;
  std::size_t echo_bytes = 0;
  std::string tls_dir;
  bool bad = argc < 7;
  for (int i = 7; i < argc; ++i) {
    const std::string word = argv[i];
    if (word == "no-deadline") {
      no_deadline = true;
    } else if (word == "no-id") {
      no_id = true;
    } else if (word.rfind("echo=", 0) == 0 && std::strtoull(word.c_str() + 5, nullptr, 10) >= 4) {
      echo_bytes = std::strtoull(word.c_str() + 5, nullptr, 10);
    } else if (word.rfind("tls=", 0) == 0 && word.size() > 4) {
      tls_dir = word.substr(4);  // PORT is then the broker's TLS port (tests/tls/make_certs' files in DIR)
    } else {
      bad = true;
    }
  }
  if (bad) {
    std::cerr << "usage: sbus-bench load PORT ADDRESS[,ADDRESS...]|floor:QUEUE SECRET_FILE|BODY_FILE CALLS DEPTH "
                 "[no-deadline] "
                 "[no-id] [echo=BYTES] [tls=CERT_DIR]\n";
    return 2;
  }
  const int port = std::atoi(argv[2]);
  const std::string target = argv[3];
  const std::uint64_t calls = std::strtoull(argv[5], nullptr, 10);
  const int depth = std::atoi(argv[6]);
  auto drive = [&](auto& client) {
    RunStats stats;
    if (depth > 1) {
      stats = run_pipelined(client, depth, std::chrono::hours(24), calls);
    } else {
      const auto start = Clock::now();
      for (std::uint64_t i = 0; i < calls; ++i) stats.latencies_ns.push_back(client.roundtrip(kReplyTimeout));
      stats.calls = calls;
      stats.seconds = seconds_between(start, Clock::now());
    }
    std::printf("%llu calls in %.2f s: %.0f calls/s, p50 %.0f us, p99 %.0f us\n",
                static_cast<unsigned long long>(stats.calls), stats.seconds, stats.rate(), stats.latency_us(0.5),
                stats.latency_us(0.99));
  };
  try {
    if (target.rfind("floor:", 0) == 0) {
      FloorClient client(port, target.substr(6), read_text(argv[4]), TlsFiles::in(tls_dir));
      drive(client);
      return 0;
    }
    sbus::SenderOptions options = sender_options(port, trim(read_text(argv[4])), TlsFiles::in(tls_dir));
    options.send_deadline = !no_deadline;
    options.send_message_id = !no_id;
    const std::string params = echo_bytes > 0 ? large_params(echo_bytes) : kParams;
    // ADDRESS,ADDRESS,...: the calls go round-robin (the fan-out figure's
    // load, with test.echo's services answering kParams).
    std::vector<std::string> targets;
    for (std::size_t at = 0; at <= target.size();) {
      const std::size_t comma = std::min(target.find(',', at), target.size());
      targets.push_back(target.substr(at, comma - at));
      at = comma + 1;
    }
    const bool echo = echo_bytes > 0 || targets.size() > 1;
    SbusClient client(options, targets, params, echo ? params : kSum);
    drive(client);
    if (client.errors() > 0)
      std::printf("%llu errors (%s)\n", static_cast<unsigned long long>(client.errors()), client.last_error().c_str());
    return client.errors() == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "sbus-bench load: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace bench
