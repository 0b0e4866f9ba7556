#include "sbus_client.hpp"

namespace bench {

SbusClient::SbusClient(sbus::SenderOptions options, std::vector<std::string> addresses, std::string params,
                       std::string expected, std::string message_address)
    : sender_(std::move(options)),
      addresses_(std::move(addresses)),
      params_(std::move(params)),
      expected_(std::move(expected)),
      message_address_(std::move(message_address)) {}

void SbusClient::issue() {
  const std::string& address = addresses_[next_address_];
  next_address_ = (next_address_ + 1) % addresses_.size();
  const auto now = Clock::now();
  started_.emplace(sender_.call_async(address, params_), now);
}

std::optional<std::uint64_t> SbusClient::complete(std::chrono::milliseconds timeout) {
  std::optional<sbus::AsyncReply> reply = sender_.next_reply(timeout);
  if (!reply) return std::nullopt;
  const auto now = Clock::now();
  check(reply->result);
  auto found = started_.find(reply->id);
  if (found == started_.end()) return 0;
  const auto latency = std::chrono::duration_cast<std::chrono::nanoseconds>(now - found->second).count();
  started_.erase(found);
  return static_cast<std::uint64_t>(latency);
}

std::uint64_t SbusClient::roundtrip(std::chrono::milliseconds timeout) {
  const std::string& address = addresses_[next_address_];
  next_address_ = (next_address_ + 1) % addresses_.size();
  const auto start = Clock::now();
  sbus::CallResult result = sender_.call(address, params_, timeout);
  const auto latency = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
  check(result);
  return static_cast<std::uint64_t>(latency);
}

void SbusClient::send_confirmed() {
  sender_.send(message_address_, params_);
}

void SbusClient::check(const sbus::CallResult& result) {
  if (result.ok() && result.message == expected_) return;
  ++errors_;
  last_error_ = result.ok() ? "unexpected result " + result.message : result.error_code + ": " + result.message;
}

}  // namespace bench
