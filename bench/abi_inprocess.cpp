#include "abi_inprocess.hpp"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "run_stats.hpp"
#include "worker/plugin_host.hpp"
#include "worker/plugin_loader.hpp"

namespace bench {

namespace {

// The thread's CPU time, in nanoseconds: what other processes of a busy
// machine do is not counted, as wall time would count it.
double thread_cpu_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) * 1e9 + static_cast<double>(now.tv_nsec);
}

struct Loaded {
  std::unique_ptr<sbus::HostContext> context;
  std::unique_ptr<sbus::LoadedService> service;
};

struct Timing {
  double cpu_ns = 0;
  double wall_ns = 0;
};

// A fresh request per call, as ServiceRunner::execute makes one.
Timing time_calls(sbus::LoadedService& service, const std::string& label, std::string_view params, int calls) {
  const double start = thread_cpu_ns();
  const auto wall_start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) {
    sbus_request request;
    request.id = "0123456789abcdef";
    request.node = "bench";
    request.category = "bench";
    request.service = "echo";
    request.params = params;
    request.is_call = true;
    if (std::optional<std::string> failure = service.call(request)) {
      throw std::runtime_error(label + ": " + *failure);
    }
    if (!request.error_code.empty()) throw std::runtime_error(label + " answered " + request.error_code);
  }
  const double cpu = thread_cpu_ns() - start;
  const double wall = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - wall_start).count();
  return Timing{cpu / calls, wall / calls};
}

}  // namespace

std::vector<InProcessFigure> measure_in_process(const std::string& plugin_dir,
                                                const std::vector<InProcessService>& services,
                                                const std::string& params_json, int rounds, int calls) {
  // As the worker hands them over: the call's text, checked once on arrival.
  const std::string_view params = params_json;
  // Plugins are never unloaded here: a Go runtime cannot be (docs/plugins.md),
  // and sbusd's worker leaves them loaded until it exits as well.
  static auto* loader = new sbus::PluginLoader();
  std::vector<Loaded> loaded;
  for (const InProcessService& s : services) {
    Loaded one;
    one.context = std::make_unique<sbus::HostContext>("bench", "bench", s.export_name,
                                                      std::map<std::string, std::string>{}, sbus::SenderOptions{});
    one.service = std::make_unique<sbus::LoadedService>(
        loader->create(plugin_dir + "/" + s.plugin + ".so", s.export_name, sbus::Kind::kCall));
    if (std::optional<std::string> failure = one.service->start(one.context->get())) {
      throw std::runtime_error(s.label + ": start failed: " + *failure);
    }
    loaded.push_back(std::move(one));
  }
  for (std::size_t i = 0; i < loaded.size(); ++i) time_calls(*loaded[i].service, services[i].label, params, calls);

  std::vector<std::vector<double>> ns(services.size());
  std::vector<std::vector<double>> wall_ns(services.size());
  std::vector<std::vector<double>> ratios(services.size());
  for (int round = 0; round < rounds; ++round) {
    std::vector<Timing> this_round(services.size());
    for (std::size_t k = 0; k < services.size(); ++k) {
      const std::size_t i = (k + static_cast<std::size_t>(round)) % services.size();
      this_round[i] = time_calls(*loaded[i].service, services[i].label, params, calls);
    }
    for (std::size_t i = 0; i < services.size(); ++i) {
      ns[i].push_back(this_round[i].cpu_ns);
      wall_ns[i].push_back(this_round[i].wall_ns);
      ratios[i].push_back(this_round[i].cpu_ns / this_round[0].cpu_ns - 1.0);
    }
  }
  for (Loaded& one : loaded) one.service->stop();
  // The service objects go (destroy()); their libraries stay with `loader`.
  loaded.clear();

  std::vector<InProcessFigure> figures;
  for (std::size_t i = 0; i < services.size(); ++i) {
    figures.push_back(InProcessFigure{services[i].label, median(ns[i]), median(ratios[i]), median(wall_ns[i])});
  }
  return figures;
}

}  // namespace bench
