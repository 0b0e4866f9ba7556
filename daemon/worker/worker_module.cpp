// The entry points of sbusd-worker.so (see worker_module.hpp).
#include "base/worker_entry.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <string>
#include <vector>

#include "base/log.hpp"
#include "amqp/tls_socket.hpp"
#include "protocol/xml_libxml2.hpp"
#include "worker/isolated_process.hpp"
#include "worker/plugin_loader.hpp"
#include "worker/handled_store.hpp"
#include "worker/worker.hpp"

#define SBUS_MODULE_EXPORT __attribute__((visibility("default")))

extern "C" SBUS_MODULE_EXPORT int sbus_worker_serve(const sbus::Config* config, std::size_t broker_index, int status_fd,
                                                    sbus::CrashJournal* journal, sbus::ReplayCache* replay,
                                                    const sbus::WorkerHistory* history) {
  // This module has its own copy of the log: set it up for this process.
  const std::string broker = config->broker_uris[broker_index].redacted();
  sbus::log_init("worker " + broker, config->log_level);
  std::string why;
  // Through the supervisor's relay when it has one, as the supervisor's
  // own entries go (sbus_worker_use_journal_relay()).
  const sbus::JournalVia via = sbus::journal_relay_adopted() ? sbus::JournalVia::kRelay : sbus::JournalVia::kInProcess;
  sbus::log_set_output(config->log_format, sbus::LogContext{config->node, broker, getpid()}, &why, via);
  if (!why.empty()) SBUS_LOG(kWarn) << "log_format " << sbus::log_format_name(config->log_format) << ": " << why;
  return sbus::run_worker(*config, broker_index, status_fd,
                          sbus::WorkerShared{journal, replay, history != nullptr ? *history : sbus::WorkerHistory{}});
}

extern "C" SBUS_MODULE_EXPORT int sbus_isolated_serve(const sbus::Config* config, std::size_t broker_index,
                                                      std::size_t service_index, int status_fd,
                                                      sbus::CrashJournal* journal) {
  const std::string broker = config->broker_uris[broker_index].redacted();
  sbus::log_init("isolated " + config->services.at(service_index).name, config->log_level);
  std::string why;
  const sbus::JournalVia via = sbus::journal_relay_adopted() ? sbus::JournalVia::kRelay : sbus::JournalVia::kInProcess;
  sbus::log_set_output(config->log_format, sbus::LogContext{config->node, broker, getpid()}, &why, via);
  if (!why.empty()) SBUS_LOG(kWarn) << "log_format " << sbus::log_format_name(config->log_format) << ": " << why;
  return sbus::run_isolated(*config, broker_index, service_index, status_fd, journal);
}

extern "C" SBUS_MODULE_EXPORT void sbus_worker_use_journal_relay(int fd) {
  sbus::adopt_journal_relay(fd);
}

namespace {

// The store of handled ids (worker/handled_store.hpp), opened as a worker
// opens it: one that cannot be opened is a problem (sbusd does not start),
// a corrupted one is moved aside with a warning, so that a start never
// fails on it again and again. A store not made yet is left to the worker
// (or systemd's StateDirectory=) to make: a check run by root must not leave
// a folder the service's user cannot write. Only a path that cannot become
// a folder (a file on the way) is a problem already.
void check_handled_store(const sbus::Config& config, std::vector<std::string>* problems) {
  const sbus::HandledStoreOptions options = sbus::handled_store_options(config);
  std::error_code ec;
  if (!std::filesystem::exists(options.dir, ec)) {
    std::filesystem::path existing = std::filesystem::path(options.dir).parent_path();
    while (!existing.empty() && !std::filesystem::exists(existing, ec)) existing = existing.parent_path();
    if (!existing.empty() && !std::filesystem::is_directory(existing, ec)) {
      problems->push_back(config.path + ": state_dir: handled store " + options.dir +
                          ": cannot create the folder: " + std::strerror(ENOTDIR) + " (" + existing.string() + ")");
    }
    return;
  }
  try {
    std::string warning;
    sbus::HandledStore::open(options, &warning);
    if (!warning.empty()) SBUS_LOG(kWarn) << warning;
  } catch (const sbus::StoreError& e) {
    problems->push_back(config.path + ": state_dir: " + e.what());
  }
}

}  // namespace

extern "C" SBUS_MODULE_EXPORT int sbus_worker_check(const sbus::Config* config, int out_fd, int run_start) {
  sbus::log_init("check", config->log_level);
  sbus::log_set_output(config->log_format, sbus::LogContext{config->node, "", 0});
  std::vector<std::string> problems;
  sbus::check_plugins(*config, &problems);
  if (run_start != 0 && problems.empty()) sbus::check_service_starts(*config, &problems);
  // A broken install fails here rather than at the first connection.
  const auto& brokers = config->broker_uris;
  if (std::any_of(brokers.begin(), brokers.end(), [](const sbus::BrokerUri& uri) { return uri.tls; })) {
    std::string error;
    if (sbus::load_tls_module(sbus::tls_module_candidates(), &error) == nullptr) {
      problems.push_back(config->path + ": brokers: an amqps:// broker needs TLS, but " + error);
    }
  }
  if (std::string error = sbus::libxml2_load_error(); !error.empty()) {
    problems.push_back(config->path + ": bodies that only libxml2 reads could not be read: " + error);
  }
  check_handled_store(*config, &problems);
  std::string text;
  for (const std::string& problem : problems) text += problem + "\n";
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(out_fd, text.data() + written, text.size() - written);
    if (n <= 0) break;
    written += static_cast<std::size_t>(n);
  }
  return problems.empty() ? 0 : 1;
}
