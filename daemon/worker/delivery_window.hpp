// The share of the broker's delivery window (basic.qos prefetch) that each
// service may hold: no service's backlog can take the whole window from the
// others.
//
// The worker asks the broker for prefetch + services + 1 deliveries. A
// service that holds none (running or waiting) may always take one; one that
// holds some may take another only while one slot stays free for each
// service that holds none and one for the worker's own answers (PING,
// sbus.stats) and for deliveries it refuses at once. So the services
// together hold at least `prefetch` deliveries, as before, and past that
// the idle services and the worker's own answers still get through.
// (With more services than prefetch, each still holds at least one.)
//
// A plain value, owned by the worker's connection thread. Not thread-safe.
#pragma once

#include <cstddef>
#include <vector>

namespace sbus {

class DeliveryWindow {
 public:
  // The basic.qos prefetch_count to ask the broker for, at most 65535.
  static std::size_t size_for(std::size_t prefetch, std::size_t services);

  DeliveryWindow(std::size_t prefetch, std::size_t services);

  // Whether `service` may hold one more delivery.
  bool admits(std::size_t service) const;
  void take(std::size_t service);
  // `count` deliveries of `service` were handled or dropped.
  void give_back(std::size_t service, std::size_t count = 1);

  std::size_t size() const { return size_; }
  std::size_t held() const { return held_total_; }
  std::size_t held(std::size_t service) const { return held_[service]; }

 private:
  std::size_t size_;
  std::vector<std::size_t> held_;
  std::size_t held_total_ = 0;
  std::size_t idle_ = 0;  // services that hold none
};

}  // namespace sbus
