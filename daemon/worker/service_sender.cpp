#include "worker/service_sender.hpp"

#include <algorithm>
#include <utility>

#include "config/sender_options.hpp"

namespace sbus {

SenderOptions service_sender_options(const Config& config, std::size_t broker_index,
                                     std::shared_ptr<CurrentDeadline> current, std::shared_ptr<Outbox> outbox) {
  SenderOptions sender = sender_options_of(config);
  const auto first = sender.brokers.begin() + static_cast<std::ptrdiff_t>(broker_index);
  std::rotate(sender.brokers.begin(), first, first + 1);
  sender.inherited_deadline = [current = std::move(current)] { return current->get(); };
  sender.hold = [outbox = std::move(outbox)](SenderOptions::Release release, bool now) {
    return outbox->hold(std::move(release), now);
  };
  return sender;
}

}  // namespace sbus
