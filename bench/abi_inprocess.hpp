// sbus-abi-bench's in-process part: each echo service loaded through sbusd's
// own loader (PluginLoader, the host table of plugin_host.cpp) and called
// directly, as a service thread calls it, with no broker in between. What
// it measures, in the calling thread's CPU time, is the entry point and the
// host functions it calls: the C ABI's whole cost per call, by the plugin's
// language.
#pragma once

#include <string>
#include <vector>

namespace bench {

struct InProcessService {
  std::string label;
  std::string plugin;       // file name in the plugin folder, without .so
  std::string export_name;  // the service's name in the plugin
};

struct InProcessFigure {
  std::string label;
  double ns_per_call = 0;  // CPU time, median over the rounds
  double vs_first = 0;     // median over the rounds of ns / the first service's ns, less 1
  double wall_ns = 0;      // wall time per call, median over the rounds
};

// `rounds` rounds of `calls` calls per service, the services in a rotated
// order each round; the params are `params_json`, handed over as the
// worker hands a call's text. Throws
// std::runtime_error when a service cannot be loaded or does not reply.
std::vector<InProcessFigure> measure_in_process(const std::string& plugin_dir,
                                                const std::vector<InProcessService>& services,
                                                const std::string& params_json, int rounds, int calls);

}  // namespace bench
