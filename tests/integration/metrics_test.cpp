// metrics_listen on a live sbusd: /metrics read by a real Prometheus parser
// (tests/integration/scrape, Debian's python3-prometheus-client) while
// calls are made, /healthz following a broker that stops and comes back,
// an address that cannot be bound, and what the supervisor maps.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <sbus/plugin.hpp>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "base/metrics_catalog.hpp"
#include "harness.hpp"
#include "sbus/sender.hpp"

namespace {

using namespace sbus_test;

// What the scrape helper printed: the status, the body, and with --parse
// the samples ("NAME LABEL=VALUE... VALUE") and families.
struct Scrape {
  int exit_code = -1;
  int status = 0;
  std::string body;
  std::string err;
};

Scrape scrape(const std::string& address, const std::string& path, bool parse = false) {
  std::vector<std::string> args = {address, path};
  if (parse) args.push_back("--parse");
  const ProcessResult run = run_program(SBUS_SOURCE_DIR "/tests/integration/scrape", args, 30s);
  Scrape result;
  result.exit_code = run.exit_code;
  result.err = run.err;
  const std::size_t line = run.out.find('\n');
  if (line != std::string::npos) {
    result.status = std::atoi(run.out.substr(0, line).c_str());
    result.body = run.out.substr(line + 1);
  }
  return result;
}

// The value of the parsed sample `name` whose labels include `labels`
// ("service=math.add"); -1 when there is none.
double sample(const std::string& parsed, const std::string& name, const std::string& labels = "") {
  std::istringstream lines(parsed);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + " ", 0) != 0) continue;
    if (!labels.empty() && line.find(" " + labels + " ") == std::string::npos &&
        line.find(" " + labels + "\n") == std::string::npos) {
      continue;
    }
    return std::atof(line.substr(line.rfind(' ') + 1).c_str());
  }
  return -1;
}

// A TCP port on 127.0.0.1 free at the time of the call.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  ::close(fd);
  return ntohs(address.sin_port);
}

std::set<pid_t> children_of(pid_t parent) {
  std::set<pid_t> children;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = read_file("/proc/" + name + "/stat");
    const std::size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 1));
    std::string state;
    pid_t ppid = 0;
    fields >> state >> ppid;
    if (ppid == parent) children.insert(static_cast<pid_t>(std::atoi(name.c_str())));
  }
  return children;
}

// A TCP connection to 127.0.0.1:`port` that sends `request` (may be
// partial) and is kept open by the caller; -1 if it cannot connect.
int connect_and_send(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return -1;
  }
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  return fd;
}

// What the server answered on `fd` until it closed or 10 s passed.
std::string read_answer(int fd) {
  std::string answer;
  char bytes[4096];
  ssize_t n;
  while ((n = ::recv(fd, bytes, sizeof(bytes), 0)) > 0) answer.append(bytes, static_cast<std::size_t>(n));
  return answer;
}

// A private RabbitMQ node (scripts/broker) that the test stops and starts
// again on the same port; stopped on destruction.
class StoppableBroker {
 public:
  StoppableBroker() {
    if (::chmod(dir_.path().c_str(), 0755) != 0) throw std::runtime_error("chmod " + dir_.path() + " failed");
    name_ = "sbus-metrics-" + std::to_string(::getpid());
    node_dir_ = dir_.file("node");
    for (int attempt = 0; attempt < 3 && port_ == 0; ++attempt) {
      const int port = std::atoi(run_program(script(), {"free-port"}, 10s).out.c_str());
      if (port > 0 && start_on(port)) port_ = port;
    }
    if (port_ == 0) throw std::runtime_error("the private broker did not start");
  }
  ~StoppableBroker() { stop(); }
  StoppableBroker(const StoppableBroker&) = delete;
  StoppableBroker& operator=(const StoppableBroker&) = delete;

  std::string uri() const { return "amqp://guest:guest@127.0.0.1:" + std::to_string(port_) + "/%2f"; }
  bool start() { return start_on(port_); }
  void stop() {
    if (running_) run_program(script(), {"stop", name_, node_dir_}, 60s);
    running_ = false;
  }

 private:
  static std::string script() { return SBUS_SOURCE_DIR "/scripts/broker"; }
  bool start_on(int port) {
    running_ = true;
    return run_program(script(), {"start", name_, std::to_string(port), node_dir_}, 90s).exit_code == 0;
  }

  TempDir dir_;
  std::string name_;
  std::string node_dir_;
  int port_ = 0;
  bool running_ = false;
};

}  // namespace

TEST_CASE("sbusd's /metrics parses with a Prometheus parser under load and its counters move as calls are made",
          "[metrics]") {
  const std::string address = "127.0.0.1:" + std::to_string(free_port());
  SbusdProcess sbusd({.extra_yaml = "metrics_listen: " + address + "\n"});
  REQUIRE(wait_until([&] { return scrape(address, "/healthz").status == 200; }, 20s, 100ms));
  const Scrape before = scrape(address, "/metrics", true);
  INFO(before.err);
  REQUIRE(before.exit_code == 0);
  const double handled_before = sample(before.body, "sbus_service_handled_total", "service=math.add");
  REQUIRE(handled_before >= 0);

  constexpr int kThreads = 4;
  constexpr int kCalls = 50;
  std::atomic<int> answered{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> callers;
  for (int t = 0; t < kThreads; ++t) {
    callers.emplace_back([&] {
      sbus::Sender sender(sbusd.sender_options());
      for (int i = 0; i < kCalls; ++i) {
        if (sender.call(sbusd.address("math.add"), "[1,2]", 20s).message == "3") ++answered;
      }
    });
  }
  // Scrapes while the calls run: each one parses.
  std::thread scraper([&] {
    for (int i = 0; i < 20 && !done; ++i) {
      const Scrape during = scrape(address, "/metrics", true);
      if (during.exit_code != 0 || during.status != 200) {
        FAIL_CHECK("a scrape under load did not parse: " << during.err);
        return;
      }
    }
  });
  for (std::thread& caller : callers) caller.join();
  done = true;
  scraper.join();
  REQUIRE(answered == kThreads * kCalls);

  Scrape after;
  const bool moved = wait_until(
      [&] {
        after = scrape(address, "/metrics", true);
        return sample(after.body, "sbus_service_handled_total", "service=math.add") >=
               handled_before + kThreads * kCalls;
      },
      10s, 200ms);
  INFO(after.body);
  CHECK(moved);
  const double count = sample(after.body, "sbus_service_duration_seconds_count", "service=math.add");
  CHECK(count >= kThreads * kCalls);
  CHECK(sample(after.body, "sbus_service_duration_seconds_bucket", "le=+Inf") >= 0);
  CHECK(sample(after.body, "sbus_broker_connected") == 1);
  CHECK(sample(after.body, "sbus_service_failed_total", "service=math.add") == 0);
  CHECK(sample(after.body, "sbus_build_info",
               "node=" + sbusd.node() + " plugin_abi=" + std::to_string(sbus::kAbiVersion) +
                   " version=" SBUS_VERSION) == 1);
  // Every family of the reference is there (a service is unavailable only
  // when its plugin fails). The parser names a counter's family without
  // its _total.
  for (const sbus::MetricFamily& family : sbus::metric_families()) {
    if (family.name == "sbus_service_unavailable") continue;
    std::string name(family.name);
    if (name.ends_with("_total")) name.resize(name.size() - 6);
    CHECK(after.body.find("family " + name + " " + std::string(family.type) + "\n") != std::string::npos);
  }

  const Scrape health = scrape(address, "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == "ok: 1/1 brokers connected\n");
  CHECK(scrape(address, "/readyz").status == 200);
  const Scrape unknown = scrape(address, "/nope");
  CHECK(unknown.status == 404);
}

TEST_CASE("slow clients and huge headers get their answer without holding up the others", "[metrics]") {
  const int port = free_port();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  SbusdProcess sbusd({.extra_yaml = "metrics_listen: " + address + "\n"});
  REQUIRE(wait_until([&] { return scrape(address, "/healthz").status == 200; }, 20s, 100ms));
  // Clients that send half a request and wait.
  std::vector<int> slow;
  for (int i = 0; i < 8; ++i) slow.push_back(connect_and_send(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n"));
  for (const int fd : slow) CHECK(fd >= 0);
  const Scrape meanwhile = scrape(address, "/metrics", true);
  CHECK(meanwhile.status == 200);
  CHECK(meanwhile.exit_code == 0);

  const int huge =
      connect_and_send(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n");
  REQUIRE(huge >= 0);
  const std::string answer = read_answer(huge);
  ::close(huge);
  INFO(answer.substr(0, 200));
  CHECK((answer.rfind("HTTP/1.1 431", 0) == 0 || answer.rfind("HTTP/1.1 400", 0) == 0));

  const int post = connect_and_send(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(post >= 0);
  CHECK(read_answer(post).rfind("HTTP/1.1 405", 0) == 0);
  ::close(post);
  for (const int fd : slow) ::close(fd);
  // The bus was served throughout.
  sbus::Sender sender(sbusd.sender_options());
  CHECK(sender.call(sbusd.address("math.add"), "[1,2]", 20s).message == "3");
}

TEST_CASE("/healthz answers 503 with the reason while a worker's broker is down, and 200 once it is back",
          "[metrics]") {
  StoppableBroker broker;
  const std::string address = "127.0.0.1:" + std::to_string(free_port());
  SbusdProcess sbusd(
      {.brokers = {broker.uri()}, .extra_yaml = "metrics_listen: " + address + "\n", .wait_ready = false});
  REQUIRE(wait_until([&] { return scrape(address, "/healthz").status == 200; }, 20s, 100ms));
  sbus::SenderOptions options = sbusd.sender_options();
  options.brokers = {broker.uri()};
  {
    sbus::Sender sender(options);
    REQUIRE(sender.call(sbusd.address("math.add"), "[1,2]", 20s).message == "3");
  }
  REQUIRE(wait_until(
      [&] {
        return sample(scrape(address, "/metrics", true).body, "sbus_service_handled_total", "service=math.add") == 1;
      },
      10s, 200ms));

  broker.stop();
  Scrape health;
  REQUIRE(wait_until(
      [&] {
        health = scrape(address, "/healthz");
        return health.status == 503;
      },
      30s, 100ms));
  INFO(health.body);
  CHECK(health.body.rfind("unhealthy: 0/1 brokers connected; amqp://guest@127.0.0.1:", 0) == 0);
  CHECK(
      (health.body.find("not connected") != std::string::npos || health.body.find("restarting") != std::string::npos));
  CHECK(scrape(address, "/readyz").status == 503);
  // Still answered, with the last known counters and connected 0.
  const Scrape down = scrape(address, "/metrics", true);
  CHECK(down.exit_code == 0);
  CHECK(sample(down.body, "sbus_broker_connected") == 0);
  CHECK(sample(down.body, "sbus_service_handled_total", "service=math.add") == 1);

  REQUIRE(broker.start());
  CHECK(wait_until([&] { return scrape(address, "/healthz").status == 200; }, 60s, 200ms));
  CHECK(scrape(address, "/readyz").status == 200);
}

TEST_CASE("a metrics_listen that cannot be bound is named by --check and at start, and the bus is served",
          "[metrics]") {
  // A socket listening on the address first.
  const int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in bound{};
  bound.sin_family = AF_INET;
  bound.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(bound);
  REQUIRE(::bind(holder, reinterpret_cast<sockaddr*>(&bound), sizeof(bound)) == 0);
  REQUIRE(::listen(holder, 1) == 0);
  ::getsockname(holder, reinterpret_cast<sockaddr*>(&bound), &size);
  const std::string address = "127.0.0.1:" + std::to_string(ntohs(bound.sin_port));
  const std::string reason = "metrics_listen " + address + ": cannot bind " + address + ": Address already in use";

  SbusdProcess sbusd({.extra_yaml = "metrics_listen: " + address + "\n"});
  const ProcessResult check = run_program(SBUS_BUILD_DIR "/bin/sbusd", {"--config", sbusd.config_path(), "--check"});
  INFO(check.err);
  CHECK(check.exit_code == 0);
  CHECK(check.err.find(reason) != std::string::npos);

  CHECK(wait_until([&] { return sbusd.log().find(reason) != std::string::npos; }, 10s));
  std::vector<std::string> args = {"call", sbusd.address("math.add"), "[1,2]", "--timeout", "10"};
  for (const std::string& arg : sbusd.cli_args()) args.push_back(arg);
  const ProcessResult call = run_cli(args);
  CHECK(call.out == "3\n");

  ::close(holder);
  INFO(sbusd.log());
  CHECK(wait_until([&] { return scrape(address, "/healthz").status == 200; }, 20s, 200ms));
}

TEST_CASE("the supervisor maps no TLS library: the HTTP server runs in a process of its own, on a Unix socket too",
          "[metrics]") {
  TempDir dir;
  const std::string socket_path = dir.file("metrics.sock");
  SbusdProcess sbusd({.extra_yaml = "metrics_listen: " + socket_path + "\n"});
  REQUIRE(wait_until([&] { return scrape(socket_path, "/healthz").status == 200; }, 20s, 100ms));
  CHECK(scrape(socket_path, "/metrics", true).exit_code == 0);

  const std::set<std::string> supervisor = mapped_libraries(sbusd.pid());
  for (const char* library : {"libgnutls", "libssl", "libcrypto", "libmicrohttpd", "sbus-metrics"}) {
    INFO(library);
    CHECK_FALSE(maps_library(supervisor, library));
  }
  int servers = 0;
  for (const pid_t child : children_of(sbusd.pid())) {
    if (maps_library(mapped_libraries(child), "libmicrohttpd")) ++servers;
  }
  CHECK(servers == 1);

  sbusd.stop();
  CHECK_FALSE(std::filesystem::exists(socket_path));
}

namespace {

// A process's resident memory (VmRSS), in kB.
long rss_kb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// Where a process's RSS is, by file mapped ("[heap]", "/dev/zero" and the
// like for the rest): "NAME KB" a line, to explain a figure.
std::string rss_by_mapping(pid_t pid) {
  std::ifstream smaps("/proc/" + std::to_string(pid) + "/smaps");
  std::map<std::string, long> kb;
  std::string name;
  for (std::string line; std::getline(smaps, line);) {
    std::istringstream fields(line);
    std::string first;
    fields >> first;
    if (first == "Rss:") {
      long value = 0;
      fields >> value;
      kb[name] += value;
    } else if (first.find('-') != std::string::npos && first.back() != ':') {
      std::string skip;
      name = "[anonymous]";
      for (int i = 0; i < 4 && fields >> skip;) ++i;
      std::getline(fields >> std::ws, name);
      if (name.empty()) name = "[anonymous]";
    }
  }
  std::string text;
  for (const auto& [file, value] : kb) text += file + " " + std::to_string(value) + "\n";
  return text;
}

}  // namespace

TEST_CASE("the supervisor keeps its footprint: at most 5 MB idle, after calls and scrapes, and after a worker restart",
          "[metrics][memory]") {
  // 5 MiB: what docs/performance.md promises. Most of it is libc and
  // libstdc++ pages, which the kernel maps in 64 kB runs around each page
  // touched when they are in the page cache already: a cold cache gives a
  // smaller figure, never a larger one.
  constexpr long kLimitKb = 5 * 1024;
  TempDir dir;
  const std::string socket_path = dir.file("metrics.sock");
  SbusdProcess sbusd({.extra_yaml = "metrics_listen: " + socket_path + "\n"});
  REQUIRE(wait_until([&] { return scrape(socket_path, "/healthz").status == 200; }, 20s, 100ms));
  const long idle = rss_kb(sbusd.pid());

  sbus::Sender sender(sbusd.sender_options());
  for (int i = 0; i < 50; ++i) REQUIRE(sender.call(sbusd.address("math.add"), "[1,2]", 10s).message == "3");
  for (int i = 0; i < 5; ++i) REQUIRE(scrape(socket_path, "/metrics").status == 200);
  const long after_calls = rss_kb(sbusd.pid());

  // A worker killed and started again: the supervisor reaps it, clears its
  // slots in the crash journal and forks another.
  const std::string broker = "amqp://guest@127.0.0.1:" + std::to_string(broker_port()) + "/%2f";
  const pid_t worker = worker_pid_in_log(sbusd.log(), broker);
  REQUIRE(worker > 0);
  REQUIRE(::kill(worker, SIGKILL) == 0);
  REQUIRE(wait_until([&] { return worker_pid_in_log(sbusd.log(), broker) != worker; }, 20s));
  REQUIRE(wait_until([&] { return sender.call(sbusd.address("math.add"), "[2,2]", 5s).message == "4"; }, 30s));
  REQUIRE(scrape(socket_path, "/metrics").status == 200);
  const long after_restart = rss_kb(sbusd.pid());

  std::cout << "[metrics] supervisor RSS " << idle << " kB idle, " << after_calls << " kB after calls and scrapes, "
            << after_restart << " kB after a worker restart" << std::endl;
  REQUIRE(idle > 0);
  INFO("the supervisor's RSS by mapping, in kB:\n" << rss_by_mapping(sbusd.pid()));
  if (kRssMeasurable) {
    CHECK(idle <= kLimitKb);
    CHECK(after_calls <= kLimitKb);
    CHECK(after_restart <= kLimitKb);
  }
}
