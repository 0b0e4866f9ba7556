// The crash journal's returned marks (docs/reliability.md#handled-once): a
// handler that returned in a worker killed before its id was recorded is
// known to the next worker, and, kept in a file, to the next sbusd.
#include "base/crash_journal.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;
using sbus::CrashJournal;

namespace {

struct Folder {
  Folder() {
    char pattern[] = "/tmp/sbus-journal-XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~Folder() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

// A journal mapped by the test, unmapped after.
struct Mapped {
  explicit Mapped(CrashJournal* mapped) : value(mapped) {}
  ~Mapped() {
    if (value != nullptr) munmap(value, sizeof(CrashJournal));
  }
  CrashJournal* value;
};

const std::uint64_t kReturned = CrashJournal::service_key("test.record\x1f-\x1fm-1");
const std::uint64_t kRecorded = CrashJournal::service_key("test.record\x1f-\x1fm-2");
const std::uint64_t kRunning = CrashJournal::key("", "", "event-3");

// What a worker of an sbusd did before it died: one handler returned and
// not recorded, one returned and recorded, one running.
void work_and_leave_marks(CrashJournal* journal, pid_t pid) {
  const int slot = journal->claim_slot(pid, CrashJournal::service_key("test.record"));
  REQUIRE(slot >= 0);
  REQUIRE(journal->mark_returned(slot, kReturned) >= 0);
  journal->clear_mark(journal->mark_returned(slot, kRecorded), kRecorded);
  journal->begin(slot, kRunning);
}

// Runs `body` in a child that then dies of SIGKILL, as sbusd does in a
// power loss of processes; waits for it.
template <class Body>
void in_killed_child(Body body) {
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    body();
    ::kill(::getpid(), SIGKILL);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));
}

}  // namespace

TEST_CASE("a handler marked returned in a killed worker is known as returned, and one recorded in time is not") {
  Mapped mapped(CrashJournal::create());
  CrashJournal* journal = mapped.value;
  REQUIRE(journal != nullptr);
  const pid_t dead = 999999;
  work_and_leave_marks(journal, dead);
  CHECK_FALSE(journal->returned(kReturned));  // only once the worker is gone
  int returned = -1;
  CHECK(journal->worker_died(dead, true, 1, &returned) == 1);
  CHECK(returned == 1);
  CHECK(journal->returned(kReturned));
  CHECK_FALSE(journal->returned(kRecorded));
  CHECK_FALSE(journal->returned(kRunning));
  CHECK(journal->interruptions(kRunning) == 1);
}

TEST_CASE("a service thread with every mark taken gets none, and the delivery is not marked") {
  Mapped mapped(CrashJournal::create());
  CrashJournal* journal = mapped.value;
  REQUIRE(journal != nullptr);
  const pid_t dead = 999998;
  const int slot = journal->claim_slot(dead);
  for (std::size_t i = 0; i < CrashJournal::kMarks; ++i) REQUIRE(journal->mark_returned(slot, 100 + i) >= 0);
  CHECK(journal->mark_returned(slot, kReturned) == -1);
  CHECK(journal->mark_returned(-1, kReturned) == -1);  // a thread without a slot
  int returned = 0;
  journal->worker_died(dead, true, 1, &returned);
  CHECK(returned == static_cast<int>(CrashJournal::kMarks));
  CHECK_FALSE(journal->returned(kReturned));
  CHECK(journal->returned(100));
}

TEST_CASE("a slot released with marks left puts them in the ring, and a late clear leaves the next thread's mark") {
  Mapped mapped(CrashJournal::create());
  CrashJournal* journal = mapped.value;
  REQUIRE(journal != nullptr);
  const int slot = journal->claim_slot(999996);
  const int mark = journal->mark_returned(slot, kReturned);
  REQUIRE(mark >= 0);
  journal->release_slot(slot);
  CHECK(journal->returned(kReturned));
  // Another thread takes the slot, and the same mark, before the first
  // thread's record clears it.
  REQUIRE(journal->claim_slot(999995) == slot);
  REQUIRE(journal->mark_returned(slot, kRecorded) == mark);
  journal->clear_mark(mark, kReturned);
  int returned = 0;
  journal->worker_died(999995, true, 1, &returned);
  CHECK(returned == 1);
  CHECK(journal->returned(kRecorded));
}

TEST_CASE("a journal file keeps the returned marks of a SIGKILLed sbusd for the next, and nothing else") {
  Folder folder;
  const std::string path = folder.path + "/crash-journal";
  SECTION("marks left in a slot, the worker killed with its supervisor") {
    in_killed_child([&] {
      std::string error;
      int imported = 0;
      CrashJournal* journal = CrashJournal::open_file(path, 0, &error, &imported);
      if (journal == nullptr) std::_Exit(3);
      work_and_leave_marks(journal, ::getpid());
    });
  }
  SECTION("marks the supervisor had moved into the ring before it was killed") {
    in_killed_child([&] {
      std::string error;
      int imported = 0;
      CrashJournal* journal = CrashJournal::open_file(path, 0, &error, &imported);
      if (journal == nullptr) std::_Exit(3);
      work_and_leave_marks(journal, 4242);
      journal->worker_died(4242, true, 1);
    });
  }
  std::string error;
  int imported = -1;
  CrashJournal* journal = CrashJournal::open_file(path, 0, &error, &imported);
  REQUIRE(journal != nullptr);
  Mapped mapped(journal);
  CHECK(error.empty());
  CHECK(journal->returned(kReturned));
  CHECK_FALSE(journal->returned(kRecorded));
  // The rest is this sbusd's own: no call is running, none interrupted.
  CHECK_FALSE(journal->started_elsewhere(kRunning));
  CHECK(journal->interruptions(kRunning) == 0);
  CHECK(journal->crash_times(CrashJournal::service_key("test.record")).empty());
  CHECK(fs::file_size(path) == sizeof(CrashJournal));
  CHECK((fs::status(path).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
}

TEST_CASE("a journal file held by a running sbusd is refused after the wait, naming the file") {
  Folder folder;
  const std::string path = folder.path + "/crash-journal";
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t holder = ::fork();
  REQUIRE(holder >= 0);
  if (holder == 0) {
    std::string error;
    int imported = 0;
    const bool opened = CrashJournal::open_file(path, 0, &error, &imported) != nullptr;
    const char byte = opened ? 'y' : 'n';
    if (::write(ready[1], &byte, 1) != 1) std::_Exit(1);
    ::pause();
    std::_Exit(0);
  }
  char byte = 0;
  REQUIRE(::read(ready[0], &byte, 1) == 1);
  REQUIRE(byte == 'y');
  std::string error;
  int imported = 0;
  CHECK(CrashJournal::open_file(path, 100, &error, &imported) == nullptr);
  CHECK(error.find(path) != std::string::npos);
  CHECK(error.find("another sbusd") != std::string::npos);
  ::kill(holder, SIGKILL);
  ::waitpid(holder, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  // Once it is gone, the next takes it.
  Mapped mapped(CrashJournal::open_file(path, 1000, &error, &imported));
  CHECK(mapped.value != nullptr);
}

TEST_CASE("a journal file of another layout is read as empty, and one that is not a file is refused") {
  Folder folder;
  std::string error;
  int imported = -1;
  SECTION("another size") {
    const std::string path = folder.path + "/crash-journal";
    std::ofstream(path) << "not a journal";
    Mapped mapped(CrashJournal::open_file(path, 0, &error, &imported));
    REQUIRE(mapped.value != nullptr);
    CHECK(imported == 0);
    CHECK(fs::file_size(path) == sizeof(CrashJournal));
    CHECK_FALSE(mapped.value->returned(kReturned));
  }
  SECTION("a folder") {
    const std::string path = folder.path + "/crash-journal";
    fs::create_directory(path);
    CHECK(CrashJournal::open_file(path, 0, &error, &imported) == nullptr);
    CHECK(error.find(path) != std::string::npos);
  }
}
