// One configured service: its object, its thread and its bounded queue.
//
// The connection thread submits jobs with try_submit(), which never blocks;
// the service thread runs them one at a time and pushes each outcome to the
// CompletionQueue. Exceptions from the plugin become error replies; they
// never leave the thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "common/crash_journal.hpp"
#include "config/config.hpp"
#include "worker/completion_queue.hpp"
#include "worker/plugin_loader.hpp"

namespace sbus {

class ServiceRunner {
 public:
  ServiceRunner(std::size_t index, ServiceConfig config, LoadedService service,
                ServiceContext context, CompletionQueue* completions, CrashJournal* journal,
                int max_retries);
  ~ServiceRunner();
  ServiceRunner(const ServiceRunner&) = delete;
  ServiceRunner& operator=(const ServiceRunner&) = delete;

  // Starts the thread and runs the service's start() on it; throws
  // PluginError when start() throws.
  void start();

  // Connection thread. False when the queue is full (the job is untouched).
  bool try_submit(Job& job);

  // Drops the jobs not yet started and returns how many; the one running
  // finishes and reports as usual.
  std::size_t discard_queued();

  // Ends the thread after the running job (queued ones are dropped) and
  // runs the service's stop().
  void stop();

  const ServiceConfig& config() const { return config_; }

 private:
  void run();
  Outcome execute(Job& job);

  std::size_t index_;
  ServiceConfig config_;
  LoadedService service_;
  ServiceContext context_;
  CompletionQueue* completions_;
  CrashJournal* journal_;  // may be null
  int max_retries_;
  int journal_slot_ = -1;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  bool started_ = false;
  std::string start_error_;
  std::thread thread_;
};

}  // namespace sbus
