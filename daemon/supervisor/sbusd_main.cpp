// sbusd: the sbus agent daemon.
#include <getopt.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sbus/plugin.hpp>

#include "base/listen_address.hpp"
#include "base/log.hpp"
#include "base/replay_cache.hpp"
#include "config/config.hpp"
#include "config/install_paths.hpp"
#include "supervisor/supervisor.hpp"

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

// sbusd's options, for getopt_long(3) and --help. getopt_long from libc
// rather than Boost.Program_options: the supervisor stays mapped for as long
// as sbusd runs, and that library cost it 0.4 MB of RSS (docs/performance.md).
struct OptionSpec {
  const char* name;
  char short_name;       // 0: none
  const char* argument;  // nullptr: a flag
  const char* help;
};
enum : int { kLongOnly = 256 };
// clang-format off
constexpr OptionSpec kOptions[] = {
    {"config", 'c', "FILE", "the YAML config file"},
    {"check", 't', nullptr, "validate the config and load every plugin, then exit: 0 if all is well, "
                            "1 with each problem on its own line"},
    {"start", 0, nullptr, "with --check: also create each service and run its start() and stop(), as a worker "
                          "would (as the user running the check: mind what start() opens)"},
    {"log-level", 0, "LEVEL", "debug, info, warn or error (overrides the config)"},
    {"broker", 0, "URI", "broker URI; repeat for several (replaces the config's brokers)"},
    {"plugin-dir", 0, "DIR", "plugin folder (overrides the config's plugin_dir)"},
    {"secret-file", 0, "FILE", "file holding the shared secret (overrides the config)"},
    {"check-timeout", 0, "SECONDS", "seconds a config check (--check, the one at start and each reload's) may take "
                                    "before it is given up on"},
    {"version", 'V', nullptr, "print the version and exit"},
    {"help", 'h', nullptr, "print this help and exit"},
};
// clang-format on

std::string usage() {
  std::string text = "Usage: sbusd [--config FILE] [--check]\nOptions:\n";
  for (const OptionSpec& option : kOptions) {
    std::string left = "  ";
    left += option.short_name != 0 ? std::string("-") + option.short_name + ", " : "    ";
    left += std::string("--") + option.name;
    if (option.argument != nullptr) left += std::string(" ") + option.argument;
    std::string help = option.help;
    if (std::string_view(option.name) == "config") help += std::string(" (default ") + sbus::kDefaultConfigPath + ")";
    if (std::string_view(option.name) == "check-timeout") {
      help += " (default " + std::to_string(sbus::kDefaultCheckTimeout.count()) + ")";
    }
    text += left + std::string(left.size() < 30 ? 30 - left.size() : 1, ' ') + help + "\n";
  }
  return text;
}

// Parses the command line into `parsed`; an exit code when sbusd is done
// already (--help, --version: 0; a bad option: 2).
std::optional<int> parse_options(int argc, char** argv, Options* parsed) {
  constexpr int kCount = static_cast<int>(std::size(kOptions));
  option long_options[kCount + 1] = {};
  std::string short_options = ":";  // ':' first: a missing argument is told apart
  for (int i = 0; i < kCount; ++i) {
    const OptionSpec& spec = kOptions[i];
    const int value = spec.short_name != 0 ? spec.short_name : kLongOnly + i;
    long_options[i] = {spec.name, spec.argument != nullptr ? required_argument : no_argument, nullptr, value};
    if (spec.short_name != 0) short_options += std::string(1, spec.short_name) + (spec.argument != nullptr ? ":" : "");
  }
  const auto bad = [](const std::string& why) {
    std::cerr << "sbusd: " << why << "\n" << usage();
    return 2;
  };
  parsed->config_path = sbus::kDefaultConfigPath;
  double check_seconds = std::chrono::duration<double>(sbus::kDefaultCheckTimeout).count();
  ::opterr = 0;
  for (int code; (code = ::getopt_long(argc, argv, short_options.c_str(), long_options, nullptr)) != -1;) {
    const std::string arg = ::optarg != nullptr ? ::optarg : "";
    const std::string name = code >= kLongOnly ? kOptions[code - kLongOnly].name : "";
    if (code == '?') return bad("unrecognised option '" + std::string(argv[::optind - 1]) + "'");
    if (code == ':') return bad("the option '" + std::string(argv[::optind - 1]) + "' needs an argument");
    if (code == 'h') {
      std::cout << usage();
      return 0;
    }
    if (code == 'V') {
      std::cout << "sbusd " SBUS_VERSION << " (plugin ABI " << sbus::kAbiVersion << ")\n";
      return 0;
    }
    if (code == 'c') parsed->config_path = arg;
    if (code == 't') parsed->check = true;
    if (name == "start") parsed->start = true;
    if (name == "broker") parsed->overrides.brokers.push_back(arg);
    if (name == "plugin-dir") parsed->overrides.plugin_dir = arg;
    if (name == "secret-file") parsed->overrides.secret_file = arg;
    if (name == "log-level") {
      sbus::LogLevel level;
      if (!sbus::parse_log_level(arg, &level)) return bad("--log-level must be debug, info, warn or error");
      parsed->overrides.log_level = level;
    }
    if (name == "check-timeout") {
      char* end = nullptr;
      check_seconds = std::strtod(arg.c_str(), &end);
      if (arg.empty() || *end != '\0') return bad("--check-timeout takes a number of seconds, not '" + arg + "'");
    }
  }
  if (::optind < argc) return bad("unexpected argument '" + std::string(argv[::optind]) + "'");
  if (!(check_seconds > 0 && check_seconds <= 3600)) {
    std::cerr << "sbusd: --check-timeout must be more than 0 and at most 3600 seconds\n";
    return 2;
  }
  parsed->check_timeout = std::chrono::milliseconds(static_cast<long long>(check_seconds * 1000));
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
