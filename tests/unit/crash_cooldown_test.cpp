// A service that keeps crashing its worker: the crash journal counts its
// crashes across worker restarts, and cooldown_until() switches it off for
// a while (made-up times).
#include "worker/crash_cooldown.hpp"

#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "base/crash_journal.hpp"

using namespace std::chrono_literals;
using sbus::cooldown_until;
using sbus::CrashCooldownOptions;
using sbus::CrashJournal;

namespace {

constexpr std::int64_t kSecond = 1000000000;
const std::int64_t kT0 = 1000 * kSecond;

CrashCooldownOptions options(int limit, std::chrono::seconds cooldown) {
  CrashCooldownOptions o;
  o.limit = limit;
  o.cooldown = cooldown;
  return o;
}

}  // namespace

TEST_CASE("a service is switched off once it crashed limit times within the cool-down", "[crash_cooldown]") {
  const CrashCooldownOptions three_in_60s = options(3, 60s);
  SECTION("two crashes leave it serving") {
    CHECK_FALSE(cooldown_until({kT0, kT0 + kSecond}, kT0 + 2 * kSecond, three_in_60s));
  }
  SECTION("the third switches it off until the cool-down after the last one") {
    const std::vector<std::int64_t> crashes = {kT0, kT0 + kSecond, kT0 + 2 * kSecond};
    CHECK(cooldown_until(crashes, kT0 + 3 * kSecond, three_in_60s) == kT0 + 62 * kSecond);
    CHECK(cooldown_until(crashes, kT0 + 62 * kSecond - 1, three_in_60s) == kT0 + 62 * kSecond);
    SECTION("and it serves again when the cool-down is over") {
      CHECK_FALSE(cooldown_until(crashes, kT0 + 62 * kSecond, three_in_60s));
    }
  }
  SECTION("crashes spread wider than the cool-down do not add up") {
    CHECK_FALSE(cooldown_until({kT0, kT0 + 40 * kSecond, kT0 + 80 * kSecond}, kT0 + 81 * kSecond, three_in_60s));
  }
  SECTION("a limit of 0 never switches it off") {
    CHECK_FALSE(cooldown_until({kT0, kT0, kT0, kT0, kT0}, kT0, options(0, 60s)));
  }
  SECTION("no crash, no cool-down") {
    CHECK_FALSE(cooldown_until({}, kT0, three_in_60s));
  }
}

TEST_CASE("the crash journal counts the crashes of each service across worker deaths", "[crash_cooldown]") {
  CrashJournal* journal = CrashJournal::create();
  REQUIRE(journal != nullptr);
  const std::uint64_t crashy = CrashJournal::service_key("test.crash");
  const std::uint64_t other = CrashJournal::service_key("math.add");
  REQUIRE(crashy != other);
  constexpr pid_t kWorker = 4242;

  SECTION("a worker killed during a call counts one crash of that call's service") {
    const int slot = journal->claim_slot(kWorker, crashy);
    const int idle = journal->claim_slot(kWorker, other);
    journal->begin(slot, 77);
    CHECK(journal->worker_died(kWorker, true, kT0) == 1);
    CHECK(journal->crash_times(crashy) == std::vector<std::int64_t>{kT0});
    CHECK(journal->crash_times(other).empty());
    (void)idle;
    SECTION("and the next ones add up, oldest first") {
      const int again = journal->claim_slot(kWorker + 1, crashy);
      journal->begin(again, 78);
      journal->worker_died(kWorker + 1, true, kT0 + kSecond);
      CHECK(journal->crash_times(crashy) == std::vector<std::int64_t>{kT0, kT0 + kSecond});
    }
  }
  SECTION("a worker that exited (not killed) during a call counts no crash, but the call is interrupted") {
    const int slot = journal->claim_slot(kWorker, crashy);
    journal->begin(slot, 79);
    CHECK(journal->worker_died(kWorker, false, kT0) == 1);
    CHECK(journal->crash_times(crashy).empty());
    CHECK(journal->interruptions(79) == 1);
  }
  SECTION("a worker killed between calls counts no crash") {
    journal->claim_slot(kWorker, crashy);
    CHECK(journal->worker_died(kWorker, true, kT0) == 0);
    CHECK(journal->crash_times(crashy).empty());
  }
  ::munmap(journal, sizeof(CrashJournal));
}
