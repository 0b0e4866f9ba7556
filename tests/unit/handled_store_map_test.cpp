// The handled store's map in the worker's RSS: the pages of data.mdb that
// lookups and writes read are unmapped at each sync (HandledStore::
// release_map()), and what the store holds is found all the same.
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "worker/handled_store.hpp"

namespace fs = std::filesystem;
using sbus::HandledStore;
using std::chrono::system_clock;

namespace {

struct Folder {
  Folder() {
    char pattern[] = "/tmp/sbus-handled-map-XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~Folder() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

// The Rss of this process's maps of `file` (/proc/self/smaps), in kB; -1
// when it maps no such file.
long mapped_kib(const std::string& file) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool in_file = false;
  long total = -1;
  while (std::getline(smaps, line)) {
    if (line.find('-') < line.find(' ') && line.find(':') > line.find(' ')) {
      in_file = line.size() >= file.size() && line.compare(line.size() - file.size(), file.size(), file) == 0;
      if (in_file && total < 0) total = 0;
    } else if (in_file && line.rfind("Rss:", 0) == 0) {
      std::istringstream(line.substr(4)) >> line;
      total += std::stol(line);
    }
  }
  return total;
}

std::string id_key(int i) {
  // Ids in no order, as message ids (UUIDs) come: the writes and lookups
  // touch leaves all over the file.
  return HandledStore::key("math.add", "py-servicebus", std::to_string((i * 7919) % 100003) + "-id");
}

// Records `count` ids (id_key(0) to id_key(count - 1)), 100 a transaction,
// each with the same short reply.
void fill(HandledStore& store, int count) {
  static const std::string reply = "<response status=\"ok\">3</response>";
  for (int first = 0; first < count; first += 100) {
    std::vector<HandledStore::Entry> batch;
    std::vector<std::string> keys;
    keys.reserve(100);
    for (int i = first; i < first + 100; ++i) keys.push_back(id_key(i));
    for (const std::string& key : keys) batch.push_back({key, &reply});
    REQUIRE(store.record_all(batch, system_clock::now()) == batch.size());
  }
}

// A store of at most 64 MiB in `folder`.
sbus::HandledStoreOptions store_options(const Folder& folder) {
  sbus::HandledStoreOptions options;
  options.dir = folder.path + "/handled";
  options.max_bytes = 64ULL << 20;
  return options;
}

}  // namespace

TEST_CASE("a sync unmaps the pages of the handled store the worker read, and its ids are found after") {
  Folder folder;
  const sbus::HandledStoreOptions options = store_options(folder);
  std::string warning;
  auto store = HandledStore::open(options, &warning);
  REQUIRE(warning.empty());
  const std::string file = fs::canonical(options.dir).string() + "/data.mdb";
  REQUIRE(mapped_kib(file) >= 0);

  const std::string reply = "<response status=\"ok\">3</response>";
  constexpr int kIds = 20000;
  fill(*store, kIds);
  for (int i = 0; i < kIds; i += 7) REQUIRE(store->find(id_key(i)));
  const long before = mapped_kib(file);
  INFO("data.mdb mapped before the sync: " << before << " kB");
  // Thousands of ids: megabytes of pages read through the map.
  REQUIRE(before > 1024);

  store->sync(system_clock::now());
  const long after = mapped_kib(file);
  INFO("after: " << after << " kB");
  CHECK(after <= 64);

  // What it holds is read back through the same map.
  for (int i = 0; i < kIds; i += 97) {
    const auto found = store->find(id_key(i));
    REQUIRE(found);
    CHECK(found->reply == reply);
  }
  CHECK_FALSE(store->find(HandledStore::key("math.add", "py-servicebus", "never-recorded")));
  CHECK(store->size() == kIds);
}

TEST_CASE("a handled store opened again maps none of the pages its checks read") {
  Folder folder;
  const sbus::HandledStoreOptions options = store_options(folder);
  std::string warning;
  auto store = HandledStore::open(options, &warning);
  // 20,000 records: the next open's checks and first write transaction
  // read hundreds of KB of them (556 kB when they were left mapped).
  fill(*store, 20000);
  store.reset();

  store = HandledStore::open(options, &warning);
  REQUIRE(warning.empty());
  const std::string file = fs::canonical(options.dir).string() + "/data.mdb";
  const long mapped = mapped_kib(file);
  INFO("data.mdb mapped after the open: " << mapped << " kB");
  CHECK(mapped <= 64);
  REQUIRE(store->find(id_key(19999)));
  CHECK(store->size() == 20000);
}
