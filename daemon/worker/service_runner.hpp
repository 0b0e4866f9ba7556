// One configured service: its object, its thread and its bounded queue.
//
// The connection thread submits jobs with try_submit(), which never blocks;
// the service thread runs them one at a time and hands each outcome to its
// OutcomeSink. Exceptions from the plugin become error replies; they
// never leave the thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/crash_journal.hpp"
#include "config/config.hpp"
#include "worker/completion_queue.hpp"
#include "worker/plugin_loader.hpp"
#include "worker/wakeup.hpp"

namespace sbus {

class ServiceRunner {
 public:
  ServiceRunner(std::size_t index, ServiceConfig config, LoadedService service,
                ServiceContext context, OutcomeSink* completions, CrashJournal* journal,
                int max_retries);
  ~ServiceRunner();
  ServiceRunner(const ServiceRunner&) = delete;
  ServiceRunner& operator=(const ServiceRunner&) = delete;

  // Starts the thread and runs the service's start() on it; throws
  // PluginError when start() throws.
  void start();

  // False when the queue is full (the job is untouched). When the service
  // thread sleeps, it is woken now; or, given `wake_later`, *wake_later is
  // set and the caller calls wake() once it has let go of its own lock, so
  // that the service thread does not find that lock held.
  bool try_submit(Job& job, bool* wake_later = nullptr);
  void wake() { wakeup_.fire(); }

  // Drops the jobs not yet started and returns how many; the one running
  // finishes and reports as usual.
  std::size_t discard_queued();

  // Ends the thread after the running job (queued ones are dropped) and
  // runs the service's stop().
  void stop();

  const ServiceConfig& config() const { return config_; }

  // For sbus.stats: the jobs waiting in its queue, and whether one runs now.
  std::size_t queued();
  bool running() const { return running_.load(std::memory_order_relaxed); }

 private:
  void run();
  Outcome execute(Job& job);
  // With `lock` (on mutex_) held: releases it while the thread sleeps
  // until try_submit() or stop() wakes it, or until `deadline`.
  void sleep(std::unique_lock<std::mutex>& lock, std::optional<std::chrono::steady_clock::time_point> deadline);

  std::size_t index_;
  ServiceConfig config_;
  LoadedService service_;
  ServiceContext context_;
  OutcomeSink* completions_;
  CrashJournal* journal_;  // may be null
  int max_retries_;
  int journal_slot_ = -1;

  std::mutex mutex_;
  std::condition_variable started_cv_;  // start() waits for the service's start()
  std::deque<Job> queue_;
  bool sleeping_ = false;  // the thread sleeps on wakeup_, or is about to
  Wakeup wakeup_;
  bool stopping_ = false;
  bool started_ = false;
  std::atomic<bool> running_{false};
  std::string start_error_;
  std::thread thread_;
};

}  // namespace sbus
