// The nonces of hmac-sha256 calls seen within the accepted clock skew,
// shared by every worker of one sbusd (memory mapped before the first fork),
// so that a call seen through one broker cannot be replayed through
// another.
//
// Bounded: a fixed open-addressed table of lock-free slots. A nonce is
// remembered until its call's timestamp leaves the skew window, after which
// the timestamp check refuses the call anyway. When every slot near a nonce
// is taken by a live one, the call is refused (fail closed) rather than the
// protection silently weakened.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

namespace sbus {

class ReplayCache {
 public:
  static constexpr std::size_t kSlots = 1 << 18;  // 4 MiB, touched as used
  static constexpr std::size_t kProbe = 64;

  enum class Result { kFresh, kReplayed, kFull };

  // A cache shared with every process forked afterwards; nullptr if mmap
  // fails. In-process use (tests): create(false).
  static ReplayCache* create(bool shared = true);

  // The cache kept in the file `path`, created (mode 0600, its folder 0700
  // when missing) or reopened as the last sbusd left it; shared with every
  // process forked afterwards. A file that is not this user's regular file
  // is refused; one of another size (another version) is emptied. nullptr
  // with the reason, naming the file, in `error`.
  static ReplayCache* open_file(const std::string& path, std::string* error);

  // Records `nonce` as seen until `expires` (unix seconds); kReplayed when
  // it was already there and still live.
  Result remember(std::string_view nonce, std::int64_t expires, std::int64_t now);
  // Lets `nonce` in again: a call this worker admitted but gave back to the
  // broker unstarted (a drain), whose redelivery is no replay.
  void forget(std::string_view nonce);

 private:
  // Plain integers, accessed through std::atomic_ref: constructing
  // std::atomic members would write all 4 MiB at start, making every page
  // resident in the supervisor and each worker.
  struct Slot {
    std::uint64_t hash;
    std::int64_t expires;
  };
  Slot slots_[kSlots];
};

}  // namespace sbus
