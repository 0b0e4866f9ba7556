// The benchmark's sbus side of a caller: sbus::Sender, the library users
// call services with, with the same interface as FloorClient so that one
// driver runs both.
//
// Owned by one thread (sbus::Sender is not thread-safe). Transport failures
// propagate as sbus::SenderError; replies that are errors or not the
// expected result are counted in errors().
#pragma once

#include <sbus/sender.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace bench {

class SbusClient {
 public:
  // Calls go round-robin to `addresses` with `params`; a reply other than
  // `expected` counts as an error. Sends go to `message_address`.
  SbusClient(sbus::SenderOptions options, std::vector<std::string> addresses, std::string params, std::string expected,
             std::string message_address = {});

  void issue();
  std::optional<std::uint64_t> complete(std::chrono::milliseconds timeout);
  std::size_t in_flight() const { return sender_.in_flight(); }
  // One call through Sender::call (the synchronous API): its latency in ns.
  std::uint64_t roundtrip(std::chrono::milliseconds timeout);
  void send_confirmed();

  std::uint64_t errors() const { return errors_; }
  const std::string& last_error() const { return last_error_; }
  sbus::Sender& sender() { return sender_; }

 private:
  using Clock = std::chrono::steady_clock;
  void check(const sbus::CallResult& result);

  sbus::Sender sender_;
  std::vector<std::string> addresses_;
  std::string params_;
  std::string expected_;
  std::string message_address_;
  std::size_t next_address_ = 0;
  std::unordered_map<std::string, Clock::time_point> started_;
  std::uint64_t errors_ = 0;
  std::string last_error_;
};

}  // namespace bench
