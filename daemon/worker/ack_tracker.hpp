// The deliveries of one connection that are not acked yet, and the acks that
// are due: once per loop turn, one basic.ack with `multiple` for the run of
// handled deliveries at the front (less work for the broker, which is the
// bottleneck under load), and single acks for handled deliveries behind one
// still running, so that a slow call never holds back the others' acks.
//
// A delivery that must stay unacked (left while stopping: the broker gives
// it to the next consumer) is never covered by a multiple ack.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

namespace sbus {

class AckTracker {
 public:
  struct Ack {
    std::uint64_t tag;
    bool multiple;  // also every delivery before it
  };

  // Every delivery, as it arrives (in tag order): `handled` false for one
  // that is left as it is.
  void track(std::uint64_t tag, bool handled);
  // Handled: acked by the next take_due().
  void ack(std::uint64_t tag);
  // Rejected (the caller sends basic.reject at once): settled, so a
  // multiple ack may cover it. False when the tag is unknown.
  bool reject(std::uint64_t tag);
  // To stay unacked.
  void leave(std::uint64_t tag);

  // The acks to send now, in order; forgets what they settle.
  std::vector<Ack> take_due();
  // A new connection: its tags start again.
  void clear() { entries_.clear(); }
  std::size_t size() const { return entries_.size(); }

 private:
  enum class State { kOpen, kAcked, kRejected, kLeft };
  struct Entry {
    std::uint64_t tag;
    State state;
  };
  Entry* find(std::uint64_t tag);

  std::deque<Entry> entries_;
};

}  // namespace sbus
