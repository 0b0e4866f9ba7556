#include "abi_inprocess.hpp"

#include <rapidjson/document.h>
#include <time.h>

#include <algorithm>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
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

// A fresh request per call, as ServiceRunner::execute makes one.
double time_calls(sbus::LoadedService& service, const std::string& label, const rapidjson::Value& params,
                  int calls) {
  const double start = thread_cpu_ns();
  for (int i = 0; i < calls; ++i) {
    sbus_request request;
    request.id = "0123456789abcdef";
    request.node = "bench";
    request.category = "bench";
    request.service = "echo";
    request.params = &params;
    request.is_call = true;
    if (std::optional<std::string> failure = service.call(request)) {
      throw std::runtime_error(label + ": " + *failure);
    }
    if (!request.error_code.empty()) throw std::runtime_error(label + " answered " + request.error_code);
  }
  return (thread_cpu_ns() - start) / calls;
}

}  // namespace

std::vector<InProcessFigure> measure_in_process(const std::string& plugin_dir,
                                                const std::vector<InProcessService>& services,
                                                const std::string& params_json, int rounds, int calls) {
  rapidjson::Document params;
  params.Parse(params_json.c_str());
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
  std::vector<std::vector<double>> ratios(services.size());
  for (int round = 0; round < rounds; ++round) {
    std::vector<double> this_round(services.size());
    for (std::size_t k = 0; k < services.size(); ++k) {
      const std::size_t i = (k + static_cast<std::size_t>(round)) % services.size();
      this_round[i] = time_calls(*loaded[i].service, services[i].label, params, calls);
    }
    for (std::size_t i = 0; i < services.size(); ++i) {
      ns[i].push_back(this_round[i]);
      ratios[i].push_back(this_round[i] / this_round[0] - 1.0);
    }
  }
  for (Loaded& one : loaded) one.service->stop();
  // The service objects go (destroy()); their libraries stay with `loader`.
  loaded.clear();

  std::vector<InProcessFigure> figures;
  for (std::size_t i = 0; i < services.size(); ++i) {
    figures.push_back(InProcessFigure{services[i].label, median(ns[i]), median(ratios[i])});
  }
  return figures;
}

}  // namespace bench
