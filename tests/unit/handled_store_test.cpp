#include "worker/handled_store.hpp"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "protocol/message_id.hpp"
#include "worker/deferred_records.hpp"

namespace fs = std::filesystem;
using sbus::HandledRecord;
using sbus::HandledStore;
using sbus::HandledStoreOptions;
using std::chrono::system_clock;

namespace {

// A fresh folder under the system's temp folder, removed afterwards.
struct Folder {
  Folder() {
    char pattern[] = "/tmp/sbus-handled-XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~Folder() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

HandledStoreOptions options_in(const std::string& dir) {
  HandledStoreOptions options;
  options.dir = dir + "/handled";
  options.max_bytes = 4ULL << 20;
  return options;
}

std::unique_ptr<HandledStore> open_store(const HandledStoreOptions& options) {
  std::string warning;
  auto store = HandledStore::open(options, &warning);
  REQUIRE(warning.empty());
  return store;
}

std::uint64_t file_bytes(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

}  // namespace

TEST_CASE("a recorded id is found again with its reply after the store is closed and opened again") {
  Folder folder;
  const HandledStoreOptions options = options_in(folder.path);
  const std::string reply = "<response status=\"ok\">42</response>";
  {
    auto store = open_store(options);
    CHECK_FALSE(store->find(HandledStore::key("math.add", "py-servicebus", "id-1")));
    REQUIRE(store->record(HandledStore::key("math.add", "py-servicebus", "id-1"), &reply, system_clock::now()));
    REQUIRE(store->record(HandledStore::key("test.record", "py-servicebus", "id-2"), nullptr, system_clock::now()));
    store->sync(system_clock::now());
  }
  auto store = open_store(options);
  const auto call = store->find(HandledStore::key("math.add", "py-servicebus", "id-1"));
  REQUIRE(call);
  CHECK(call->kind == HandledRecord::Kind::kReply);
  CHECK(call->reply == reply);
  const auto message = store->find(HandledStore::key("test.record", "py-servicebus", "id-2"));
  REQUIRE(message);
  CHECK(message->kind == HandledRecord::Kind::kMessage);
  SECTION("an id is its service's and its caller's: the same id elsewhere is new") {
    CHECK_FALSE(store->find(HandledStore::key("math.mul", "py-servicebus", "id-1")));
    CHECK_FALSE(store->find(HandledStore::key("math.add", "billing", "id-1")));
  }
  SECTION("recording an id twice keeps the first record") {
    const std::string other = "other";
    REQUIRE(store->record(HandledStore::key("math.add", "py-servicebus", "id-1"), &other, system_clock::now()));
    CHECK(store->find(HandledStore::key("math.add", "py-servicebus", "id-1"))->reply == reply);
    CHECK(store->size() == 2);
  }
}

TEST_CASE("a run of records goes in one transaction, and one that fails is recorded one by one") {
  Folder folder;
  auto store = open_store(options_in(folder.path));
  const std::string reply = "<response status=\"ok\">1</response>";
  SECTION("all recorded at once") {
    const std::vector<HandledStore::Entry> run = {{"m-1", nullptr}, {"c-1", &reply}, {"m-2", nullptr}};
    CHECK(store->record_all(run, system_clock::now()) == 3);
    CHECK(store->find("m-1")->kind == HandledRecord::Kind::kMessage);
    CHECK(store->find("c-1")->reply == reply);
    CHECK(store->size() == 3);
  }
  SECTION("a key LMDB refuses fails the transaction: the others are recorded on their own") {
    const std::string too_long(600, 'k');
    const std::vector<HandledStore::Entry> run = {{"m-1", nullptr}, {too_long, nullptr}, {"c-1", &reply}};
    CHECK(store->record_all(run, system_clock::now()) == 2);
    CHECK(store->find("m-1"));
    CHECK(store->find("c-1")->reply == reply);
    CHECK(store->size() == 2);
  }
  SECTION("a call whose reply went with a killed worker is known as handled, without a reply") {
    REQUIRE(store->record("c-2", HandledRecord::Kind::kReplyLost, nullptr, system_clock::now()));
    CHECK(store->find("c-2")->kind == HandledRecord::Kind::kReplyLost);
  }
}

TEST_CASE("a reply over the byte cap is not kept but the call is known as handled") {
  Folder folder;
  HandledStoreOptions options = options_in(folder.path);
  options.max_reply_bytes = 10;
  auto store = open_store(options);
  const std::string big(11, 'x');
  REQUIRE(store->record("k", &big, system_clock::now()));
  const auto found = store->find("k");
  REQUIRE(found);
  CHECK(found->kind == HandledRecord::Kind::kReplyNotKept);
  CHECK(found->reply.empty());
}

TEST_CASE("ids past their retention or over max_ids are forgotten oldest first") {
  Folder folder;
  HandledStoreOptions options = options_in(folder.path);
  options.max_ids = 100;
  options.keep = std::chrono::hours(1);
  auto store = open_store(options);
  const auto start = system_clock::now();
  SECTION("count") {
    for (int i = 0; i < 1000; ++i) REQUIRE(store->record("id-" + std::to_string(i), nullptr, start));
    store->sync(start);
    CHECK(store->size() == 100);
    CHECK_FALSE(store->find("id-0"));
    CHECK_FALSE(store->find("id-899"));
    CHECK(store->find("id-900"));
    CHECK(store->find("id-999"));
  }
  SECTION("age") {
    for (int i = 0; i < 50; ++i) REQUIRE(store->record("old-" + std::to_string(i), nullptr, start));
    REQUIRE(store->record("new", nullptr, start + std::chrono::minutes(30)));
    store->sync(start + std::chrono::minutes(61));
    CHECK(store->size() == 1);
    CHECK_FALSE(store->find("old-0"));
    CHECK(store->find("new"));
  }
}

TEST_CASE("the store stays within handled_max_bytes under any load as the oldest ids make room") {
  Folder folder;
  HandledStoreOptions options = options_in(folder.path);
  options.max_bytes = 1ULL << 20;  // 1 MiB
  options.max_ids = 1000000;
  options.max_reply_bytes = 4096;
  auto store = open_store(options);
  const std::string reply(2000, 'r');
  const auto now = system_clock::now();
  // About 40 MB of records through a 1 MiB store.
  for (int i = 0; i < 20000; ++i) {
    REQUIRE(store->record("call-" + std::to_string(i), &reply, now));
  }
  store->sync(now);
  CHECK(file_bytes(options.dir + "/data.mdb") <= options.max_bytes);
  CHECK(store->size() > 0);
  CHECK(store->size() < 1000);
  CHECK(store->find("call-19999"));
  CHECK_FALSE(store->find("call-0"));
}

TEST_CASE("a corrupted store is moved aside and created anew with a warning while a check only reports it") {
  Folder folder;
  HandledStoreOptions options = options_in(folder.path);
  {
    auto store = open_store(options);
    REQUIRE(store->record("before", nullptr, system_clock::now()));
  }
  {
    std::ofstream garbage(options.dir + "/data.mdb", std::ios::binary | std::ios::trunc);
    garbage << std::string(64 * 1024, '\x5a');
  }
  SECTION("a check") {
    options.repair = false;
    std::string warning;
    CHECK_THROWS_WITH(HandledStore::open(options, &warning),
                      Catch::Contains(options.dir + "/data.mdb is corrupted") && Catch::Contains("moves it aside"));
  }
  SECTION("a worker") {
    std::string warning;
    auto store = HandledStore::open(options, &warning);
    CHECK_THAT(warning, Catch::Contains("was corrupted") &&
                            Catch::Contains("moved aside to " + options.dir + "/data.mdb.corrupt-"));
    CHECK_FALSE(store->find("before"));
    REQUIRE(store->record("after", nullptr, system_clock::now()));
    CHECK(store->find("after"));
    bool kept_aside = false;
    for (const auto& entry : fs::directory_iterator(options.dir)) {
      kept_aside |= entry.path().filename().string().rfind("data.mdb.corrupt-", 0) == 0;
    }
    CHECK(kept_aside);
  }
}

TEST_CASE("a store whose folder cannot be made is refused with the path and the reason") {
  Folder folder;
  HandledStoreOptions options;
  // A file where the folder should be: refused for root too.
  options.dir = folder.path + "/file";
  { std::ofstream(options.dir) << "x"; }
  options.dir += "/handled";
  std::string warning;
  CHECK_THROWS_WITH(HandledStore::open(options, &warning),
                    Catch::Contains("handled store " + options.dir) && Catch::Contains("Not a directory"));
}

TEST_CASE("a store in a folder the process may not write is refused with the path and the reason") {
  Folder folder;
  HandledStoreOptions options = options_in(folder.path);
  fs::create_directories(options.dir);
  ::chmod(options.dir.c_str(), 0500);
  // Root may write anywhere: the open runs as nobody in a child.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
    try {
      std::string warning;
      HandledStore::open(options, &warning);
      ::_exit(1);
    } catch (const sbus::StoreError& e) {
      const std::string what = e.what();
      ::_exit(what.find(options.dir) != std::string::npos && what.find("Permission denied") != std::string::npos ? 0
                                                                                                                 : 2);
    }
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a store on a full disk is refused at open and a record that finds no room fails without a crash") {
  Folder folder;
  const std::string mount = folder.path + "/tmpfs";
  fs::create_directories(mount);
  if (::mount("tmpfs", mount.c_str(), "tmpfs", 0, "size=256k") != 0) {
    // Not root (or no mount allowed): the size-limited map stands in for a
    // full disk.
    WARN("cannot mount a tmpfs here; a 1 MiB map full of records stands in for a full disk");
    HandledStoreOptions options = options_in(folder.path);
    options.max_bytes = 1ULL << 20;
    options.max_reply_bytes = 1ULL << 20;
    auto store = open_store(options);
    const std::string huge(2ULL << 20, 'h');
    CHECK_FALSE(store->record("huge", &huge, system_clock::now()));
    CHECK(store->record("small", nullptr, system_clock::now()));
    return;
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mount};
  HandledStoreOptions options;
  options.dir = mount + "/handled";
  options.max_bytes = 16ULL << 20;
  options.max_reply_bytes = 1ULL << 20;
  SECTION("full before the open") {
    {
      std::ofstream fill(mount + "/fill", std::ios::binary);
      const std::string block(64 * 1024, 'f');
      for (int i = 0; i < 8 && fill; ++i) fill << block;
    }
    std::string warning;
    CHECK_THROWS_WITH(HandledStore::open(options, &warning),
                      Catch::Contains(options.dir) && Catch::Contains("No space left on device"));
  }
  SECTION("full while recording") {
    auto store = open_store(options);
    const std::string reply(100 * 1024, 'r');
    bool failed = false;
    for (int i = 0; i < 10 && !failed; ++i)
      failed = !store->record("r-" + std::to_string(i), &reply, system_clock::now());
    CHECK(failed);
    CHECK(store->find("r-0"));
  }
}

TEST_CASE("message ids are up to 128 bytes of UTF-8 text without control characters") {
  CHECK(sbus::message_id_problem("charge order 42").empty());
  CHECK(sbus::message_id_problem("zahlung-\xc3\xa4\xe2\x82\xac").empty());
  CHECK(sbus::message_id_problem(std::string(128, 'a')).empty());
  CHECK_THAT(sbus::message_id_problem(std::string(129, 'a')), Catch::Contains("129 bytes, over 128"));
  CHECK_THAT(sbus::message_id_problem(""), Catch::Contains("empty"));
  CHECK_THAT(sbus::message_id_problem("bad\xff"), Catch::Contains("not UTF-8"));
  CHECK_THAT(sbus::message_id_problem("\xc0\xaf"), Catch::Contains("not UTF-8"));
  CHECK_THAT(sbus::message_id_problem("line\nfeed"), Catch::Contains("control character"));
  const std::string a = sbus::fresh_message_id_prefix();
  const std::string b = sbus::fresh_message_id_prefix();
  CHECK(a.size() == 33);
  CHECK(a != b);
}

TEST_CASE("ids recorded together in one transaction are all found, and an id that cannot be recorded fails alone") {
  Folder folder;
  HandledStoreOptions options = options_in(folder.path);
  options.max_reply_bytes = 1ULL << 20;
  auto store = open_store(options);
  const std::string reply = "<response status=\"ok\">3</response>";
  const std::string first = HandledStore::key("math.add", "py-servicebus", "batch-1");
  const std::string second = HandledStore::key("test.record", "py-servicebus", "batch-2");
  REQUIRE(store->record_all({{first, &reply}, {second, nullptr}}, system_clock::now()) == 2);
  const auto call = store->find(first);
  REQUIRE(call);
  CHECK(call->kind == HandledRecord::Kind::kReply);
  CHECK(call->reply == reply);
  const auto message = store->find(second);
  REQUIRE(message);
  CHECK(message->kind == HandledRecord::Kind::kMessage);
  CHECK(store->size() == 2);
  SECTION("an id already recorded keeps its first record within a batch too") {
    const std::string other = "other";
    REQUIRE(store->record_all({{first, &other}, {"batch-3", nullptr}}, system_clock::now()) == 2);
    CHECK(store->find(first)->reply == reply);
    CHECK(store->find("batch-3"));
    CHECK(store->size() == 3);
  }
  SECTION("a batch with a key LMDB refuses records the others one by one") {
    const std::string too_long_key(600, 'k');
    CHECK(store->record_all({{"batch-4", nullptr}, {too_long_key, nullptr}}, system_clock::now()) == 1);
    CHECK(store->find("batch-4"));
    CHECK_FALSE(store->find(too_long_key));
    CHECK(store->size() == 3);
  }
}

TEST_CASE("records kept for a group commit are found before it, then all committed with their kinds") {
  using sbus::DeferredRecords;
  Folder folder;
  HandledStoreOptions options = options_in(folder.path);
  options.max_reply_bytes = 8;
  auto store = open_store(options);
  DeferredRecords deferred(std::chrono::milliseconds(5));
  REQUIRE(deferred.enabled());
  CHECK_FALSE(DeferredRecords(std::chrono::milliseconds(0)).enabled());
  const auto start = DeferredRecords::Clock::now();
  HandledRecord reply;
  reply.kind = HandledRecord::Kind::kReply;
  reply.reply = "[1]";
  HandledRecord not_kept;
  not_kept.kind = HandledRecord::Kind::kReplyNotKept;
  deferred.add({"call", reply, 3}, start);
  deferred.add({"big call", not_kept, 4}, start + std::chrono::milliseconds(4));
  deferred.add({"message", HandledRecord{}, 5}, start + std::chrono::milliseconds(4));
  CHECK(store->keeps_reply(8));
  CHECK_FALSE(store->keeps_reply(9));
  // The window runs from the first record.
  CHECK_FALSE(deferred.due(start + std::chrono::milliseconds(4)));
  CHECK(deferred.due(start + std::chrono::milliseconds(5)));
  REQUIRE(deferred.find("call"));
  CHECK(deferred.find("call")->reply == "[1]");
  CHECK(deferred.find("big call")->kind == HandledRecord::Kind::kReplyNotKept);
  CHECK_FALSE(deferred.find("other"));
  CHECK_FALSE(store->find("call"));  // not in the store before the commit
  std::vector<DeferredRecords::Entry> taken = deferred.take();
  CHECK(deferred.empty());
  CHECK_FALSE(deferred.find("call"));
  REQUIRE(taken.size() == 3);
  CHECK(taken[1].mark == 4);
  std::vector<HandledStore::Entry> entries;
  for (const DeferredRecords::Entry& entry : taken) {
    const bool kept = entry.record.kind == HandledRecord::Kind::kReply;
    entries.push_back({entry.key, kept ? &entry.record.reply : nullptr, entry.record.kind});
  }
  CHECK(store->record_all(entries, system_clock::now()) == 3);
  CHECK(store->find("call")->reply == "[1]");
  CHECK(store->find("big call")->kind == HandledRecord::Kind::kReplyNotKept);
  CHECK(store->find("message")->kind == HandledRecord::Kind::kMessage);
  // One alone takes record()'s path, with its kind too.
  CHECK(store->record_all({{"alone", nullptr, HandledRecord::Kind::kReplyNotKept}}, system_clock::now()) == 1);
  CHECK(store->find("alone")->kind == HandledRecord::Kind::kReplyNotKept);
}
