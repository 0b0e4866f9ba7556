// Fakes for the supervisor's seams (supervisor/worker_launcher.hpp,
// supervisor/clock.hpp), as osquery's watcher tests fake their processes: a
// launcher that hands out made-up pids with a real pipe each (the test
// writes what the worker would), never forks and never sends a real signal;
// a clock that moves only when told. And a rig that runs a Supervisor on
// them with a config file of its own.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/log.hpp"
#include "base/worker_entry.hpp"
#include "supervisor/clock.hpp"
#include "supervisor/supervisor.hpp"
#include "supervisor/worker_launcher.hpp"

namespace sbus_test {

// Made-up pids lie above the kernel's largest pid_max (2^22): were one ever
// handed to kill(2), it would reach no process.
inline constexpr pid_t kFirstFakePid = 10'000'000;

class FakeLauncher final : public sbus::WorkerLauncher {
 public:
  struct Child {
    pid_t pid = -1;
    bool check = false;
    std::string broker;                           // a worker: config->brokers[broker_index] at its start
    std::size_t services = 0;                     // a worker: how many services its config has
    std::uint32_t restarts = 0;                   // a worker: WorkerHistory::restarts at its start
    bool replacing = false;                       // a worker: WorkerHistory::replacing at its start
    std::optional<std::size_t> isolated_service;  // the process of an isolated service
    int write_fd = -1;                            // the child's end of its pipe; -1 once it ended
    std::vector<int> signals;                     // what the supervisor sent it, in order
    bool ended = false;
  };

  ~FakeLauncher() override {
    for (Child& child : children_) close_pipe(child);
  }

  sbus::LaunchedChild start_worker(const sbus::ServeStart& start, std::string* error) override {
    if (refuse_starts > 0) {
      --refuse_starts;
      *error = "fork failed: Resource temporarily unavailable";
      return {};
    }
    Child& child = add(false);
    child.broker = start.config->brokers[start.broker_index];
    child.services = start.config->services.size();
    child.restarts = start.history->restarts;
    child.replacing = start.history->replacing;
    child.isolated_service = start.isolated_service;
    return {child.pid, read_fds_.back()};
  }

  sbus::LaunchedChild start_check(const std::string&, const sbus::ConfigOverrides&, std::chrono::milliseconds,
                                  bool run_start, std::string*) override {
    REQUIRE(run_start);  // a reload's check runs each service's start() too
    Child& child = add(true);
    return {child.pid, read_fds_.back()};
  }

  void signal(pid_t pid, int signal) override { child(pid).signals.push_back(signal); }

  std::optional<sbus::ChildExit> reap() override {
    if (exits_.empty()) return std::nullopt;
    const sbus::ChildExit exit = exits_.front();
    exits_.pop_front();
    return exit;
  }

  // The test, playing the children:

  // Writes `bytes` to the child's pipe, as a worker writes its status.
  void write(pid_t pid, const std::string& bytes) {
    Child& c = child(pid);
    REQUIRE(c.write_fd >= 0);
    REQUIRE(::write(c.write_fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  }
  void connect(pid_t pid) { write(pid, std::string(1, sbus::kStatusConnected)); }
  // The child ends with `status` (waitpid's): the next turn reaps it.
  void end(pid_t pid, int status) {
    Child& c = child(pid);
    REQUIRE_FALSE(c.ended);
    close_pipe(c);
    c.ended = true;
    exits_.push_back({pid, status});
  }
  void exit_with(pid_t pid, int code) { end(pid, W_EXITCODE(code, 0)); }
  void kill_with(pid_t pid, int signal) { end(pid, W_EXITCODE(0, signal)); }

  // The newest child, worker or check.
  Child& last() {
    REQUIRE_FALSE(children_.empty());
    return children_.back();
  }
  // The newest worker started for `broker`.
  Child& worker_of(const std::string& broker) {
    for (auto it = children_.rbegin(); it != children_.rend(); ++it) {
      if (!it->check && it->broker == broker) return *it;
    }
    FAIL("no worker was started for " << broker);
    throw;
  }
  std::size_t workers_started() const {
    return static_cast<std::size_t>(
        std::count_if(children_.begin(), children_.end(), [](const Child& c) { return !c.check; }));
  }
  std::size_t checks_started() const { return children_.size() - workers_started(); }
  // Every signal sent to any child, for "nothing was signalled".
  std::size_t signals_sent() const {
    std::size_t count = 0;
    for (const Child& c : children_) count += c.signals.size();
    return count;
  }
  Child& child(pid_t pid) {
    for (Child& c : children_) {
      if (c.pid == pid) return c;
    }
    FAIL("no child with pid " << pid);
    throw;
  }

  // How many start_worker() calls fail next, as a fork would.
  int refuse_starts = 0;

 private:
  Child& add(bool check) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    REQUIRE(::fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0);
    Child& child = children_.emplace_back();
    child.pid = next_pid_++;
    child.check = check;
    child.write_fd = fds[1];
    read_fds_.push_back(fds[0]);  // the supervisor's to close
    return child;
  }
  static void close_pipe(Child& child) {
    if (child.write_fd >= 0) ::close(child.write_fd);
    child.write_fd = -1;
  }

  std::deque<Child> children_;
  std::vector<int> read_fds_;
  std::deque<sbus::ChildExit> exits_;
  pid_t next_pid_ = kFirstFakePid;
};

class FakeClock final : public sbus::Clock {
 public:
  TimePoint now() const override { return now_; }
  std::int64_t unix_ms() const override {
    return 1'700'000'000'000 + std::chrono::duration_cast<std::chrono::milliseconds>(now_ - kStart).count();
  }
  void advance(std::chrono::milliseconds by) { now_ += by; }

  static constexpr TimePoint kStart = TimePoint{} + std::chrono::hours(1000);

 private:
  TimePoint now_ = kStart;
};

// What the supervisor logs while it lives: stderr goes to a file.
class LogCapture {
 public:
  LogCapture() {
    char name[] = "/tmp/sbus-supervisor-log-XXXXXX";
    fd_ = ::mkstemp(name);
    REQUIRE(fd_ >= 0);
    path_ = name;
    saved_ = ::dup(STDERR_FILENO);
    ::dup2(fd_, STDERR_FILENO);
  }
  ~LogCapture() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::string text() const {
    std::ifstream in(path_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // The whole line that holds `needle`; empty when none does.
  std::string line_of(const std::string& needle) const {
    const std::string all = text();
    const auto at = all.find(needle);
    if (at == std::string::npos) return {};
    const auto start = all.rfind('\n', at);
    const auto begin = start == std::string::npos ? 0 : start + 1;
    return all.substr(begin, all.find('\n', at) - begin);
  }
  std::size_t count(const std::string& needle) const {
    const std::string all = text();
    std::size_t n = 0;
    for (auto at = all.find(needle); at != std::string::npos; at = all.find(needle, at + 1)) ++n;
    return n;
  }

 private:
  std::string path_;
  int fd_ = -1;
  int saved_ = -1;
};

// The YAML a rig writes: a broker URI per entry, math.add and `services`
// ("test.crash:isolate" is test.crash with isolate: true).
struct RigConfig {
  std::vector<std::string> brokers = {"amqp://guest:guest@10.0.0.1:5672/%2f"};
  std::vector<std::string> services = {"math.add"};
  int drain_timeout_seconds = 3;
};

// A Supervisor on fakes, started, with its config file in a folder of its
// own and every sd_notify state it sent.
class SupervisorRig {
 public:
  explicit SupervisorRig(RigConfig config = {}, std::chrono::microseconds watchdog = {},
                         std::chrono::milliseconds check_timeout = std::chrono::seconds(8))
      : notifier_([this](const std::string& state) { states.push_back(state); }, watchdog) {
    std::string pattern = (std::filesystem::temp_directory_path() / "sbus-supervisor-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    folder_ = pattern;
    secret_file_ = folder_ + "/secret";
    std::ofstream(secret_file_) << "0123456789abcdef0123456789abcdef\n";
    REQUIRE(::chmod(secret_file_.c_str(), 0600) == 0);
    write_config(config);
    sbus::Config loaded;
    std::vector<std::string> problems;
    REQUIRE(sbus::load_config(path(), {}, &loaded, &problems));
    sbus::log_init("supervisor", loaded.log_level);  // as sbusd's main does
    supervisor_ = std::make_unique<sbus::Supervisor>(sbus::SupervisorSettings{path(), {}, check_timeout},
                                                     std::move(loaded), launcher, clock, notifier_);
    REQUIRE(supervisor_->start());
  }

  ~SupervisorRig() {
    supervisor_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(folder_, ignored);
  }

  void write_config(const RigConfig& config) {
    std::string yaml = "node: supervisor-test\nbrokers:\n";
    for (const std::string& broker : config.brokers) yaml += "  - " + broker + "\n";
    yaml += "secret_file: " + secret_file_ + "\nstate_dir: " + folder_ +
            "/state\nplugin_dir: " SBUS_BUILD_DIR "/plugins\ndrain_timeout: " +
            std::to_string(config.drain_timeout_seconds) + "\nservices:\n";
    for (const std::string& service : config.services) {
      const std::string name = service.substr(0, service.find(':'));
      yaml += "  - name: " + name + "\n    plugin: " + service.substr(0, service.find('.')) + "\n";
      if (name != service) yaml += "    isolate: true\n";
    }
    std::ofstream(path() + ".new") << yaml;
    std::filesystem::rename(path() + ".new", path());
  }

  std::string path() const { return folder_ + "/sbusd.yaml"; }
  sbus::Supervisor& supervisor() { return *supervisor_; }

  // One turn with these signals; false once stopped.
  bool turn(sbus::Supervisor::Signals signals = {}) { return supervisor_->turn(signals); }
  bool stop() { return turn({.stop = true}); }
  bool hup() { return turn({.reload = true}); }
  // Moves the clock by `by`, then turns.
  bool after(std::chrono::milliseconds by) {
    clock.advance(by);
    return turn();
  }

  // A SIGHUP whose check passes: the config file as it is now is applied.
  void reload_passing() {
    hup();
    FakeLauncher::Child& check = launcher.last();
    REQUIRE(check.check);
    launcher.exit_with(check.pid, 0);
    turn();
  }

  std::size_t count(const std::string& state) const {
    return static_cast<std::size_t>(std::count(states.begin(), states.end(), state));
  }
  // The last STATUS= line.
  std::string status() const {
    for (auto it = states.rbegin(); it != states.rend(); ++it) {
      if (it->rfind("STATUS=", 0) == 0) return it->substr(7);
    }
    return {};
  }

  LogCapture log;  // first: it sees the supervisor's lines from its start
  FakeLauncher launcher;
  FakeClock clock;
  std::vector<std::string> states;

 private:
  std::string folder_;
  std::string secret_file_;
  sbus::SystemdNotifier notifier_;
  std::unique_ptr<sbus::Supervisor> supervisor_;
};

}  // namespace sbus_test
