// Notices the other agents that serve the same node on the same broker.
//
// Agents that share a node name share its queue, and the broker hands each
// call to one of them. That is scale-out when they serve the same services;
// when the services differ, a call to a service only one of them has fails
// with unknown_service whenever the broker gives it to the other. So each
// worker announces its services to every agent of its node, and compares
// theirs with its own: different ones are logged at error, once a peer, and
// shown by sbus stats.
//
// The watch runs on a thread and a connection of its own; nothing of it
// touches the serving connection. Announcements go through the exchange
// with the routing key "NODE.sbus.agents" (node names have no dots, so no
// node's queue is bound with it) to a queue of each worker,
// "NODE.sbus.agent.ID", exclusive to its connection.
//
// The same queue is bound to the fanout exchange "EXCHANGE.sbus.discover"
// (discovery_exchange()), which the watch declares: `sbus discover`
// publishes a discovery request there (an announcement with "discover":
// true and a reply-to), and each worker of every node answers with its
// announcement, which names its node. A request is not a peer: it is not
// recorded nor logged. What an answer says (node, host, pid, service names)
// is what an announcement tells every agent of the node anyway; the rest
// (`sbus discover` with the secret) comes from the signed sbus.stats call.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "amqp/amqp_connection.hpp"
#include "base/broker_uri.hpp"

namespace sbus {

class PeerWatch {
 public:
  using Clock = std::chrono::steady_clock;

  struct Peer {
    std::string host;
    long pid = 0;
    std::vector<std::string> only_there;  // services it serves and this worker does not
    std::vector<std::string> only_here;   // and the other way round
    Clock::time_point seen{};
    bool same_services() const { return only_there.empty() && only_here.empty(); }
  };

  // `services`: the CATEGORY.SERVICE names this worker serves.
  PeerWatch(BrokerUri uri, ConnectOptions options, std::string exchange, std::string node,
            std::vector<std::string> services);
  // Stops the thread (at once: its socket is shut down).
  ~PeerWatch();
  PeerWatch(const PeerWatch&) = delete;
  PeerWatch& operator=(const PeerWatch&) = delete;

  void start();
  // The agents heard from within the last kForget; any thread.
  std::vector<Peer> peers() const;

  // How often a worker announces itself again, and when an agent not heard
  // from is forgotten.
  static constexpr std::chrono::seconds kAnnounceEvery{60};
  static constexpr std::chrono::seconds kForget{150};

  // The announcement body and its parts: for the tests.
  struct Announcement {
    std::string instance;
    std::string node;  // empty in announcements of sbus before discovery
    std::string host;
    long pid = 0;
    std::vector<std::string> services;
    bool answer = false;    // an answer to an announcement: not to be answered
    bool discover = false;  // a discovery request (sbus discover): answered, not a peer
  };
  // The fanout exchange of discovery requests for agents on `exchange`.
  static std::string discovery_exchange(const std::string& exchange) { return exchange + ".sbus.discover"; }
  static std::string encode(const Announcement& announcement);
  static bool decode(std::string_view body, Announcement* announcement);

 private:
  void run();
  void serve_connection();
  void join_discovery(AmqpConnection& connection);
  void announce(AmqpConnection& connection, const std::string& routing_key, bool answer, bool through_exchange);
  void heard(const Announcement& announcement);

  const BrokerUri uri_;
  const ConnectOptions options_;
  const std::string exchange_;
  const std::string node_;
  const std::vector<std::string> services_;  // sorted
  const std::string instance_;
  const std::string queue_;

  std::thread thread_;
  std::mutex pause_mutex_;  // with pause_cv_: the destructor ends a retry pause at once
  std::condition_variable pause_cv_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> socket_{-1};
  std::atomic<bool> discovery_refused_{
      false};  // said once  // of the connection in use, for the destructor's shutdown()

  mutable std::mutex mutex_;
  std::map<std::string, Peer> peers_;  // by instance; guarded by mutex_
};

}  // namespace sbus
