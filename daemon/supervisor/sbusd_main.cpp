// sbusd: the sbus agent daemon.
#include <unistd.h>

#include <boost/program_options.hpp>

#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <sbus/plugin.hpp>

#include "base/listen_address.hpp"
#include "base/log.hpp"
#include "base/replay_cache.hpp"
#include "config/config.hpp"
#include "config/install_paths.hpp"
#include "supervisor/supervisor.hpp"

namespace po = boost::program_options;

namespace {

// legacy_short_secret is a stopgap: said at every start (and by --check),
// also once the secret no longer needs it.
std::string legacy_secret_warning(const sbus::Config& config) {
  if (!config.legacy_short_secret) return {};
  if (config.secret.size() < sbus::kMinSecretBytes) {
    return "legacy_short_secret: the secret is " + std::to_string(config.secret.size()) + " bytes, shorter than " +
           std::to_string(sbus::kMinSecretBytes) + "; rotate it to a longer one as soon as the fleet allows";
  }
  return "legacy_short_secret is set but the secret is long enough: remove the setting";
}

// sbusd's command line, parsed.
struct Options {
  std::string config_path;
  sbus::ConfigOverrides overrides;
  std::chrono::milliseconds check_timeout{sbus::kDefaultCheckTimeout};
  bool check = false;
  bool start = false;
};

// Parses the command line into `parsed`; an exit code when sbusd is done
// already (--help, --version: 0; a bad option: 2). Most of its length is
// the table of options.
std::optional<int> parse_options(int argc, char** argv, Options* parsed) {
  std::string log_level;
  std::string plugin_dir;
  std::string secret_file;
  double check_seconds = std::chrono::duration<double>(sbus::kDefaultCheckTimeout).count();

  po::options_description options("Usage: sbusd [--config FILE] [--check]\nOptions");
  // One option a line, as a table.
  // clang-format off
  options.add_options()
      ("config,c", po::value(&parsed->config_path)->default_value(sbus::kDefaultConfigPath), "the YAML config file")
      ("check,t", "validate the config and load every plugin, then exit: 0 if all is well, "
                  "1 with each problem on its own line")
      ("start", "with --check: also create each service and run its start() and stop(), as a worker "
                "would (as the user running the check: mind what start() opens)")
      ("log-level", po::value(&log_level), "debug, info, warn or error (overrides the config)")
      ("broker", po::value(&parsed->overrides.brokers),
       "broker URI; repeat for several (replaces the config's brokers)")
      ("plugin-dir", po::value(&plugin_dir), "plugin folder (overrides the config's plugin_dir)")
      ("secret-file", po::value(&secret_file), "file holding the shared secret (overrides the config)")
      ("check-timeout", po::value(&check_seconds)->default_value(check_seconds),
       "seconds a config check (--check, the one at start and each reload's) may take before it is "
       "given up on")
      ("version,V", "print the version and exit")
      ("help,h", "print this help and exit");
  // clang-format on

  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "sbusd: " << e.what() << "\n" << options;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "sbusd " SBUS_VERSION << " (plugin ABI " << sbus::kAbiVersion << ")\n";
    return 0;
  }
  if (vm.count("plugin-dir")) parsed->overrides.plugin_dir = plugin_dir;
  if (vm.count("secret-file")) parsed->overrides.secret_file = secret_file;
  if (vm.count("log-level")) {
    sbus::LogLevel level;
    if (!sbus::parse_log_level(log_level, &level)) {
      std::cerr << "sbusd: --log-level must be debug, info, warn or error\n";
      return 2;
    }
    parsed->overrides.log_level = level;
  }

  if (!(check_seconds > 0 && check_seconds <= 3600)) {
    std::cerr << "sbusd: --check-timeout must be more than 0 and at most 3600 seconds\n";
    return 2;
  }
  parsed->check_timeout = std::chrono::milliseconds(static_cast<long long>(check_seconds * 1000));
  parsed->check = vm.count("check") > 0;
  parsed->start = vm.count("start") > 0;
  if (parsed->start && !parsed->check) {
    std::cerr << "sbusd: --start goes with --check\n";
    return 2;
  }
  return std::nullopt;
}

// Whether metrics_listen can be bound now: a warning, not a problem, since
// sbusd serves the bus without it (and tries again), and a running sbusd
// holds its own address.
void warn_metrics_listen(const std::string& config_path, const sbus::Config& config) {
  if (config.metrics_listen.empty()) return;
  std::string error;
  const int fd = sbus::bind_listen(config.metrics_listen, &error);
  if (fd < 0) {
    std::cerr << "warning: " << config_path << ": metrics_listen " << config.metrics_listen << ": " << error
              << " (sbusd serves the bus without /metrics and retries; a running sbusd holds its own address)\n";
    return;
  }
  ::close(fd);
  if (const std::string path = sbus::unix_socket_path(config.metrics_listen); !path.empty()) ::unlink(path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (const std::optional<int> done = parse_options(argc, argv, &options)) return *done;
  const std::string& config_path = options.config_path;

  // Loaded and checked in a child first: a secret file that blocks when
  // read (a FIFO) or a plugin that hangs while loading ends in an error at
  // the deadline instead of a hang. Once that passed, the file loads here
  // at once.
  sbus::Config config;
  std::vector<std::string> problems =
      sbus::check_config_isolated(config_path, options.overrides, options.check_timeout, options.start);
  if (problems.empty()) sbus::load_config(config_path, options.overrides, &config, &problems);
  const std::string legacy_warning = problems.empty() ? legacy_secret_warning(config) : std::string();
  // What the start would need: the replay file, for hmac tokens.
  if (std::string error; problems.empty() && sbus::accepts_hmac(config) &&
                         sbus::ReplayCache::open_file(sbus::replay_file_of(config), &error) == nullptr) {
    problems.push_back(config_path + ": state_dir: " + error);
  }
  if (options.check) {
    if (!legacy_warning.empty()) std::cerr << "warning: " << legacy_warning << "\n";
    for (const std::string& warning : config.warnings) std::cerr << "warning: " << warning << "\n";
    if (problems.empty()) warn_metrics_listen(config_path, config);
    for (const std::string& problem : problems) std::cerr << problem << "\n";
    if (!problems.empty()) {
      std::cerr << "sbusd: config " << config_path << " has " << problems.size() << " problem(s)\n";
      return 1;
    }
    std::cout << "sbusd: config " << config_path << " is ok: node " << config.node << ", " << config.brokers.size()
              << " broker(s), " << config.services.size() << " service(s)\n";
    return 0;
  }
  if (!problems.empty()) {
    for (const std::string& problem : problems) std::cerr << problem << "\n";
    std::cerr << "sbusd: not started: config " << config_path << " has " << problems.size() << " problem(s)\n";
    return 1;
  }
  sbus::log_init("supervisor", config.log_level);
  if (!legacy_warning.empty()) SBUS_LOG(kWarn) << legacy_warning;
  for (const std::string& warning : config.warnings) SBUS_LOG(kWarn) << warning;
  return sbus::run_supervisor(config_path, options.overrides, std::move(config), options.check_timeout);
}
