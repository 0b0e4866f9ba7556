#include "worker/delivery_window.hpp"

#include <algorithm>
#include <cassert>

namespace sbus {

std::size_t DeliveryWindow::size_for(std::size_t prefetch, std::size_t services) {
  return std::min<std::size_t>(prefetch + services + 1, 65535);
}

DeliveryWindow::DeliveryWindow(std::size_t prefetch, std::size_t services)
    : size_(size_for(prefetch, services)), held_(services, 0), idle_(services) {}

bool DeliveryWindow::admits(std::size_t service) const {
  if (held_[service] == 0) return true;
  // After taking it: a slot for each idle service and one for the worker.
  return held_total_ + 1 + idle_ + 1 <= size_;
}

void DeliveryWindow::take(std::size_t service) {
  if (held_[service]++ == 0) --idle_;
  ++held_total_;
}

void DeliveryWindow::give_back(std::size_t service, std::size_t count) {
  assert(held_[service] >= count);
  held_[service] -= count;
  held_total_ -= count;
  if (count > 0 && held_[service] == 0) ++idle_;
}

}  // namespace sbus
