#include "supervisor/metrics_render.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "base/metrics_catalog.hpp"
#include "sbus/plugin.hpp"

namespace sbus {

namespace {

// Sample lines by family name.
using Samples = std::map<std::string_view, std::vector<std::string>>;

std::string label(const char* name, const std::string& value) {
  std::string out = std::string(name) + "=\"";
  for (const char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void add(Samples& samples, std::string_view family, const std::string& labels, double value) {
  char number[32];
  std::snprintf(number, sizeof(number), "%.17g", value);
  samples[family].push_back(std::string(family) + "{" + labels + "} " + number);
}

// Resident memory of a process in bytes, from /proc; -1 when it is gone.
double resident_bytes(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/statm");
  long long size = 0;
  long long resident = 0;
  if (!(in >> size >> resident)) return -1;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

// A worker's report, each line with the node and broker labels added.
void add_report(Samples& samples, const std::string& report, const std::string& common) {
  std::size_t start = 0;
  while (start < report.size()) {
    std::size_t end = report.find('\n', start);
    if (end == std::string::npos) end = report.size();
    const std::string line = report.substr(start, end - start);
    start = end + 1;
    const std::size_t name_end = line.find_first_of("{ ");
    if (name_end == std::string::npos) continue;
    const MetricFamily* family = family_of_sample(std::string_view(line).substr(0, name_end));
    if (family == nullptr) continue;  // worker and supervisor are one build: not expected
    std::string out = line.substr(0, name_end) + "{" + common;
    out += line[name_end] == '{' ? "," + line.substr(name_end + 1) : "}" + line.substr(name_end);
    samples[family->name].push_back(std::move(out));
  }
}

// The reason a broker is not served, or empty when it is.
std::string broker_problem(const WorkerRecord* worker) {
  if (worker == nullptr) return "no worker";
  switch (worker->state) {
    case WorkerState::kRunning: return worker->connected ? "" : "worker not connected";
    case WorkerState::kWaitingRestart: return "worker restarting";
    case WorkerState::kDraining: return "worker stopping";
    case WorkerState::kFailed: return "worker failed, not restarted until the next reload";
  }
  return "unknown state";
}

void add_health(const MetricsView& view, MetricsSnapshot* snapshot) {
  std::vector<std::string> problems;
  std::size_t connected = 0;
  for (const std::string& broker : view.config.brokers) {
    const WorkerRecord* worker = record_of(view.workers, broker);
    const std::string problem = broker_problem(worker);
    if (problem.empty()) {
      ++connected;
      for (const std::string& service : worker->unavailable) problems.push_back("service " + service);
    } else {
      problems.push_back((worker != nullptr ? worker->name() : broker) + ": " + problem);
    }
  }
  if (view.stopping) problems.insert(problems.begin(), "stopping");
  const std::string count =
      std::to_string(connected) + "/" + std::to_string(view.config.brokers.size()) + " brokers connected";
  snapshot->health_status = problems.empty() ? 200 : 503;
  snapshot->health = problems.empty() ? "ok: " + count : "unhealthy: " + count;
  for (const std::string& problem : problems) snapshot->health += "; " + problem;
  std::replace(snapshot->health.begin(), snapshot->health.end(), '\n', ' ');
  snapshot->health += '\n';
  // Ready: the node takes calls, through at least one broker. Not ready
  // says why: stopping, or what each broker's worker lacks.
  const bool ready = connected > 0 && !view.stopping;
  snapshot->ready_status = ready ? 200 : 503;
  snapshot->ready = (ready ? "ready: " : view.stopping ? "not ready: stopping, " : "not ready: ") + count;
  if (!ready && !view.stopping) {
    for (const std::string& problem : problems) snapshot->ready += "; " + problem;
  }
  std::replace(snapshot->ready.begin(), snapshot->ready.end(), '\n', ' ');
  snapshot->ready += '\n';
}

void add_process(const MetricsView& view, Samples& samples, const std::string& node) {
  add(samples, "sbus_build_info",
      node + "," + label("version", SBUS_VERSION) + "," + label("plugin_abi", std::to_string(kAbiVersion)), 1);
  add(samples, "sbus_uptime_seconds", node, view.uptime.count());
  const auto memory = [&](const std::string& pid, const char* process, const std::string& broker) {
    const double bytes = resident_bytes(pid);
    if (bytes >= 0) {
      add(samples, "sbus_process_resident_memory_bytes",
          node + "," + label("process", process) + "," + label("broker", broker), bytes);
    }
  };
  memory("self", "supervisor", "");
  if (view.metrics_pid > 0) memory(std::to_string(view.metrics_pid), "metrics", "");
  for (const WorkerRecord& worker : view.workers) {
    if (worker.pid > 0) memory(std::to_string(worker.pid), "worker", worker.name());
  }
}

}  // namespace

const WorkerRecord* record_of(const std::deque<WorkerRecord>& workers, const std::string& broker) {
  const WorkerRecord* best = nullptr;
  for (const WorkerRecord& worker : workers) {
    if (worker.broker != broker) continue;
    const bool serving = worker.connected && worker.state == WorkerState::kRunning;
    const bool best_serving = best != nullptr && best->connected && best->state == WorkerState::kRunning;
    if (best == nullptr || (serving && !best_serving) || (serving == best_serving && worker.id > best->id)) {
      best = &worker;
    }
  }
  return best;
}

MetricsSnapshot render_metrics(const MetricsView& view) {
  MetricsSnapshot snapshot;
  add_health(view, &snapshot);
  Samples samples;
  const std::string node = label("node", view.config.node);
  add_process(view, samples, node);
  for (const std::string& broker : view.config.brokers) {
    const WorkerRecord* worker = record_of(view.workers, broker);
    const std::string labels = node + "," + label("broker", worker != nullptr ? worker->name() : broker);
    add(samples, "sbus_worker_restarts_total", labels, worker != nullptr ? worker->history.restarts : 0);
    add(samples, "sbus_broker_connected", labels, broker_problem(worker).empty() ? 1 : 0);
    if (worker == nullptr) continue;
    for (const std::string& service : worker->unavailable) {
      add(samples, "sbus_service_unavailable", labels + "," + label("service", service.substr(0, service.find(':'))),
          1);
    }
    add_report(samples, worker->metrics, labels);
  }
  for (const MetricFamily& family : metric_families()) {
    const auto found = samples.find(family.name);
    if (found == samples.end()) continue;
    snapshot.metrics += "# HELP " + std::string(family.name) + " " + std::string(family.help) + "\n";
    snapshot.metrics += "# TYPE " + std::string(family.name) + " " + std::string(family.type) + "\n";
    for (const std::string& line : found->second) snapshot.metrics += line + "\n";
  }
  return snapshot;
}

}  // namespace sbus
