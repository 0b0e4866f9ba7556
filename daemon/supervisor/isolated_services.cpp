#include "supervisor/isolated_services.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "base/crash_journal.hpp"
#include "base/log.hpp"
#include "base/worker_entry.hpp"
#include "supervisor/worker_process.hpp"

namespace sbus {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

// Whether a reload leaves an isolated process as it is: the same entry
// (what the plugin sees of it) and the same plugin file.
bool same_service(const ServiceConfig& a, const ServiceConfig& b, const PluginStamps& before,
                  const PluginStamps& after) {
  const auto stamp = [](const PluginStamps& stamps, const std::string& path) -> std::optional<PluginStamp> {
    const auto it = stamps.find(path);
    if (it == stamps.end()) return std::nullopt;
    return it->second;
  };
  return a.plugin_path == b.plugin_path && a.export_name == b.export_name && a.kind == b.kind &&
         a.options == b.options && a.memory_limit == b.memory_limit && a.topics == b.topics &&
         stamp(before, a.plugin_path) == stamp(after, b.plugin_path);
}

std::string mebibytes(std::uint64_t bytes) {
  std::ostringstream out;
  out << (bytes >> 20) << " MiB";
  return out.str();
}

}  // namespace

std::uint64_t read_rss(pid_t pid) {
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  std::uint64_t size = 0;
  std::uint64_t resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

IsolatedServices::IsolatedServices(WorkerLauncher& launcher, Clock& clock, RssReader rss)
    : launcher_(launcher), clock_(clock), rss_(rss ? std::move(rss) : RssReader(&read_rss)) {}

IsolatedServices::~IsolatedServices() {
  for (IsolatedRecord& record : records_) close_status(record.process);
}

void IsolatedServices::close_status(WorkerRecord& process) {
  if (process.status_fd >= 0) ::close(process.status_fd);
  process.status_fd = -1;
}

void IsolatedServices::start(std::shared_ptr<const Config> config, CrashJournal* journal) {
  journal_ = journal;
  for (std::size_t b = 0; b < config->brokers.size(); ++b) {
    for (std::size_t s = 0; s < config->services.size(); ++s) {
      if (config->services[s].isolate) add(config, b, s);
    }
  }
}

void IsolatedServices::add(std::shared_ptr<const Config> config, std::size_t broker, std::size_t service) {
  IsolatedRecord& record = records_.emplace_back();
  record.process.id = ++next_id_;
  record.process.broker = config->brokers[broker];
  record.process.broker_index = broker;
  record.process.config = std::move(config);
  record.service_index = service;
  record.service = record.process.config->services[service].name;
  record.memory_limit = record.process.config->services[service].memory_limit;
  spawn(record);
}

void IsolatedServices::reload(std::shared_ptr<const Config> config, const PluginStamps& before,
                              const PluginStamps& after) {
  std::vector<std::pair<std::size_t, std::size_t>> wanted;
  for (std::size_t b = 0; b < config->brokers.size(); ++b) {
    for (std::size_t s = 0; s < config->services.size(); ++s) {
      if (config->services[s].isolate) wanted.emplace_back(b, s);
    }
  }
  for (IsolatedRecord& record : records_) {
    if (record.process.state == WorkerState::kDraining) continue;
    const auto keep = std::find_if(wanted.begin(), wanted.end(), [&](const auto& entry) {
      return config->brokers[entry.first] == record.process.broker &&
             config->services[entry.second].name == record.service &&
             same_service(record.process.config->services[record.service_index], config->services[entry.second], before,
                          after);
    });
    if (keep != wanted.end()) {
      record.process.config = config;
      record.process.broker_index = keep->first;
      record.service_index = keep->second;
      wanted.erase(keep);
      // One that gave up (its start() failed) is tried again, as a worker is.
      if (record.process.state == WorkerState::kFailed) spawn(record);
      continue;
    }
    SBUS_LOG(kInfo) << log_service(record.service) << log_worker_pid(record.process.pid) << record.name()
                    << ": changed or removed by the reload; stopping pid " << record.process.pid;
    if (record.process.pid > 0) {
      record.process.state = WorkerState::kDraining;
      launcher_.signal(record.process.pid, SIGTERM);
    } else {
      record.process.state = WorkerState::kDraining;  // dropped below
    }
  }
  records_.erase(std::remove_if(records_.begin(), records_.end(),
                                [](const IsolatedRecord& r) {
                                  return r.process.state == WorkerState::kDraining && r.process.pid <= 0;
                                }),
                 records_.end());
  for (const auto& [broker, service] : wanted) add(config, broker, service);
}

void IsolatedServices::spawn(IsolatedRecord& record) {
  WorkerRecord& process = record.process;
  if (process.spawned) ++process.history.restarts;
  process.spawned = true;
  record.killed_for.clear();
  std::string error;
  ServeStart start{process.config.get(), process.broker_index, journal_, nullptr, &process.history, std::nullopt};
  start.isolated_service = record.service_index;
  const LaunchedChild child = launcher_.start_worker(start, &error);
  if (child.pid < 0) {
    SBUS_LOG(kError) << log_service(record.service) << "cannot start " << record.name() << ": " << error
                     << "; retrying in 1 s";
    process.state = WorkerState::kWaitingRestart;
    process.restart_at = clock_.now() + std::chrono::seconds(1);
    return;
  }
  close_status(process);
  process.unavailable.clear();
  process.partial.clear();
  process.in_record = false;
  process.status_fd = child.fd;
  process.pid = child.pid;
  process.state = WorkerState::kRunning;
  process.started_at = clock_.now();
  SBUS_LOG(kInfo) << log_service(record.service) << log_worker_pid(child.pid) << record.name() << " started, pid "
                  << child.pid;
}

bool IsolatedServices::exited(pid_t pid, int status, bool stopping) {
  const auto it =
      std::find_if(records_.begin(), records_.end(), [&](const IsolatedRecord& r) { return r.process.pid == pid; });
  if (it == records_.end()) return false;
  IsolatedRecord& record = *it;
  WorkerRecord& process = record.process;
  read_status();
  close_status(process);
  process.pid = -1;
  const Clock::TimePoint now = clock_.now();
  const bool crashed = WIFSIGNALED(status);
  int interrupted = 0;
  if (journal_ != nullptr) {
    interrupted =
        journal_->worker_died(pid, crashed, duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count());
  }
  const std::string how = describe_exit(status) + (record.killed_for.empty() ? "" : " (" + record.killed_for + ")");
  process.history.last_exit_unix_ms = clock_.unix_ms();
  std::snprintf(process.history.last_exit, sizeof(process.history.last_exit), "%s", how.c_str());
  if (process.state == WorkerState::kDraining || stopping) {
    const std::string line = record.name() + " (pid " + std::to_string(pid) + ") " + how;
    if (crashed) {
      SBUS_LOG(kError) << log_service(record.service) << log_worker_pid(pid) << line;
    } else {
      SBUS_LOG(kInfo) << log_service(record.service) << log_worker_pid(pid) << line;
    }
    close_status(process);
    records_.erase(it);
    return true;
  }
  RestartPolicy::Exit exit = RestartPolicy::Exit::kFailure;
  if (WIFEXITED(status) && WEXITSTATUS(status) == kWorkerExitFatal) exit = RestartPolicy::Exit::kFatal;
  // Its calls in progress were answered `interrupted` by the worker: as for
  // a worker, a crash pinned on calls restarts it at once.
  if (crashed && interrupted > 0) exit = RestartPolicy::Exit::kCrashDuringCall;
  const RestartPolicy::Decision decision =
      process.policy.on_exit(exit, duration_cast<milliseconds>(now - process.started_at), now);
  if (decision.give_up) {
    process.state = WorkerState::kFailed;
    SBUS_LOG(kError) << log_service(record.service) << log_worker_pid(pid) << record.name() << " (pid " << pid << ") "
                     << how << ": fatal, not restarting until the next reload";
    return true;
  }
  process.state = WorkerState::kWaitingRestart;
  process.restart_at = decision.restart_at;
  const std::string line = record.name() + " (pid " + std::to_string(pid) + ") " + how +
                           (interrupted > 0 ? " during a call" : "") + "; restarting in " +
                           std::to_string(duration_cast<milliseconds>(decision.restart_at - now).count()) + " ms";
  if (crashed) {
    SBUS_LOG(kError) << log_service(record.service) << log_worker_pid(pid) << line;
  } else {
    SBUS_LOG(kWarn) << log_service(record.service) << log_worker_pid(pid) << line;
  }
  return true;
}

void IsolatedServices::read_status() {
  for (IsolatedRecord& record : records_) {
    WorkerRecord& process = record.process;
    char bytes[4096];
    ssize_t n;
    while (process.status_fd >= 0 && (n = ::read(process.status_fd, bytes, sizeof(bytes))) > 0) {
      for (ssize_t i = 0; i < n; ++i) {
        if (!process.in_record) {
          process.in_record = bytes[i] == kStatusUnavailable;
          continue;
        }
        if (bytes[i] != '\n') {
          if (process.partial.size() < 4096) process.partial += bytes[i];
          continue;
        }
        SBUS_LOG(kError) << log_service(record.service) << log_worker_pid(process.pid) << record.name() << " (pid "
                         << process.pid << "): service unavailable: " << process.partial;
        process.unavailable.push_back(std::move(process.partial));
        process.partial.clear();
        process.in_record = false;
      }
    }
  }
}

void IsolatedServices::step(Clock::TimePoint now) {
  for (IsolatedRecord& record : records_) {
    if (record.process.state == WorkerState::kWaitingRestart && record.process.restart_at <= now) spawn(record);
  }
  if (now >= next_sample_) {
    next_sample_ = now + kMemorySampleInterval;
    sample_memory();
  }
}

void IsolatedServices::sample_memory() {
  for (IsolatedRecord& record : records_) {
    if (record.memory_limit == 0 || record.process.pid <= 0 || !record.killed_for.empty()) continue;
    const std::uint64_t rss = rss_(record.process.pid);
    if (rss <= record.memory_limit) continue;
    record.killed_for = "over its memory_limit: RSS " + mebibytes(rss) + " > " + mebibytes(record.memory_limit);
    SBUS_LOG(kError) << log_service(record.service) << log_worker_pid(record.process.pid) << record.name() << " (pid "
                     << record.process.pid << ") " << record.killed_for << ": SIGKILL";
    launcher_.signal(record.process.pid, SIGKILL);
  }
}

void IsolatedServices::signal_all(int signal) {
  for (IsolatedRecord& record : records_) {
    if (record.process.pid > 0) launcher_.signal(record.process.pid, signal);
  }
  if (signal == SIGTERM) {
    // Those without a process have nothing to stop.
    records_.erase(std::remove_if(records_.begin(), records_.end(),
                                  [&](IsolatedRecord& r) {
                                    if (r.process.pid > 0) return false;
                                    close_status(r.process);
                                    return true;
                                  }),
                   records_.end());
  }
}

bool IsolatedServices::any_alive() const {
  return std::any_of(records_.begin(), records_.end(), [](const IsolatedRecord& r) { return r.process.pid > 0; });
}

void IsolatedServices::add_fds(std::vector<int>* fds) const {
  for (const IsolatedRecord& record : records_) {
    if (record.process.status_fd >= 0) fds->push_back(record.process.status_fd);
  }
}

milliseconds IsolatedServices::timeout(Clock::TimePoint now) const {
  milliseconds timeout{1000};
  for (const IsolatedRecord& record : records_) {
    if (record.process.state == WorkerState::kWaitingRestart) {
      timeout =
          std::min(timeout, std::max(milliseconds(0), duration_cast<milliseconds>(record.process.restart_at - now)));
    }
  }
  return timeout;
}

}  // namespace sbus
