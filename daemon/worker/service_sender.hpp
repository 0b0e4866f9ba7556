// The sender a service gets through ServiceContext::sender(), the same in a
// worker and in an isolated service's process.
#pragma once

#include <sbus/sender.hpp>

#include <cstddef>
#include <memory>

#include "config/config.hpp"
#include "worker/outbox.hpp"
#include "worker/service_runner.hpp"

namespace sbus {

// The config's sender with the broker of `broker_index` first. The calls
// the service makes while it handles a delivery inherit that delivery's
// deadline (`current`, which its thread sets), and what it sends meanwhile
// is held in `outbox` until its handler returns.
SenderOptions service_sender_options(const Config& config, std::size_t broker_index,
                                     std::shared_ptr<CurrentDeadline> current, std::shared_ptr<Outbox> outbox);

}  // namespace sbus
