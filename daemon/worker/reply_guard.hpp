// Which reply addresses are safe to publish to on the worker's connection.
//
// RabbitMQ 3.x closes a connection with INTERNAL_ERROR (541) when a reply on
// it goes to a direct reply-to address whose caller was on a cluster node
// that is gone. The call, unacked, is redelivered and would do it again for
// ever, and every reply in flight on the connection is lost with it. So
// after such a close the addresses replied to shortly before are suspects:
// their replies go through a connection of their own (the quarantine),
// where a 541 costs nothing else and proves the address dead; an address
// that takes a reply there is alive again.
//
// A caller can also forge a direct reply-to address naming a node that was
// never in the cluster, with the same effect. So a reply goes out on the
// worker's connection only when nothing the caller chose can make the
// broker close it: to a queue name, or to a direct reply-to address of a
// node that a reply has reached before (proven), from a caller whose
// token was valid. Everything else goes through the quarantine, whose
// delivery proves the node (route_reply()). The worker proves its own
// broker's node when it connects.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>

namespace sbus {

class ReplyGuard {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Route { kDirect, kQuarantine, kDrop };
  // Whether the call's token was checked and valid. A reply to an
  // unauthenticated caller (a refused token, an undecodable body, PING)
  // never goes out on the worker's connection to a direct reply-to address.
  enum class Caller { kUnauthenticated, kAuthenticated };

  static constexpr std::size_t kRecent = 256;  // replies remembered
  static constexpr std::chrono::milliseconds kWindow{5000};
  static constexpr std::size_t kMaxAddresses = 4096;  // per set; then it starts over
  static constexpr std::size_t kMaxNodes = 256;       // proven nodes; then it starts over

  static std::uint64_t address(std::string_view reply_to);

  // By what is known of the address alone (dead, suspect).
  Route route(std::uint64_t address) const;
  // The route of a reply to `reply_to` (whose address() is `address`).
  Route route_reply(std::string_view reply_to, std::uint64_t address, Caller caller) const;
  // A reply published on the worker's connection.
  void sent(std::uint64_t address, Clock::time_point now);
  // The broker failed to deliver a reply (541): returns how many addresses
  // became suspects.
  std::size_t delivery_failed(Clock::time_point now);
  // What the quarantine found out.
  // `reply_to` took a reply: the address is alive, and so is its node.
  void alive(std::uint64_t address, std::string_view reply_to);
  void alive(std::uint64_t address) { suspects_.erase(address); }
  void dead(std::uint64_t address);

 private:
  struct Sent {
    Clock::time_point at;
    std::uint64_t address = 0;
  };
  std::array<Sent, kRecent> recent_{};  // a ring
  std::size_t next_ = 0;
  std::unordered_set<std::uint64_t> suspects_;
  std::unordered_set<std::uint64_t> dead_;
  std::unordered_set<std::string> proven_nodes_;
};

}  // namespace sbus
