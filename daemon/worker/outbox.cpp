#include "worker/outbox.hpp"

#include <cstdint>
#include <cstdio>
#include <exception>
#include <random>
#include <utility>

#include "protocol/token.hpp"

namespace sbus {

namespace {

constexpr std::size_t kIdDigits = 32;

bool connection_failure(SenderError::Kind kind) {
  return kind == SenderError::Kind::kConnect || kind == SenderError::Kind::kConnectionLost ||
         kind == SenderError::Kind::kTimeout || kind == SenderError::Kind::kBlocked;
}

}  // namespace

std::string derived_message_id(std::string_view incoming_id, std::string_view service, std::size_t index) {
  std::string data(incoming_id);
  data += '\0';
  data += std::to_string(index);
  return hmac_sha256_hex(service, data).substr(0, kIdDigits);
}

std::string fresh_message_id() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  char text[kIdDigits + 1];
  std::snprintf(text, sizeof text, "%016llx%016llx", static_cast<unsigned long long>(random()),
                static_cast<unsigned long long>(random()));
  return text;
}

void Outbox::open(std::string incoming_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  open_ = true;
  owner_ = std::this_thread::get_id();
  incoming_id_ = std::move(incoming_id);
  held_.clear();
  sent_ = 0;
}

std::string Outbox::id_for(std::size_t index) const {
  return incoming_id_.empty() ? fresh_message_id() : derived_message_id(incoming_id_, service_, index);
}

bool Outbox::hold(SenderOptions::Release release, bool now) {
  std::size_t index = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!open_ || owner_ != std::this_thread::get_id()) return false;
    index = sent_++;
    if (!now) {
      held_.push_back(Held{index, std::move(release)});
      return true;
    }
  }
  release(id_for(index));
  return true;
}

void Outbox::discard() {
  std::lock_guard<std::mutex> lock(mutex_);
  open_ = false;
  held_.clear();
}

Outbox::Released Outbox::release() {
  std::vector<Held> held;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = false;
    held.swap(held_);
  }
  Released released;
  for (std::size_t n = 0; n < held.size(); ++n) {
    try {
      held[n].release(id_for(held[n].index));
    } catch (const SenderError& e) {
      released.ok = false;
      released.connection_failed = connection_failure(e.kind());
      released.error = e.what();
    } catch (const std::exception& e) {
      released.ok = false;
      released.error = e.what();
    }
    if (!released.ok) {
      released.error = "message " + std::to_string(n + 1) + " of " + std::to_string(held.size()) +
                       " it sent could not be released: " + released.error;
      break;
    }
    ++released.count;
  }
  return released;
}

}  // namespace sbus
