#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "supervisor/log_file.hpp"

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct ScratchDir {
  ScratchDir() {
    char name[] = "/tmp/sbus-logfile-XXXXXX";
    path = mkdtemp(name);
  }
  ~ScratchDir() { std::filesystem::remove_all(path); }
  std::string path;
};

void write_line(int fd, const std::string& line) {
  std::string text = line + "\n";
  REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
}

}  // namespace

TEST_CASE("the log file collects what is written to the redirected descriptor", "[log]") {
  ScratchDir dir;
  const std::string path = dir.path + "/sbusd.log";
  int target = ::open("/dev/null", O_WRONLY);
  REQUIRE(target >= 0);
  {
    sbus::LogFile log(path, 1 << 20, 3);
    std::string error;
    REQUIRE(log.start(target, &error));
    write_line(target, "first line");
    write_line(target, "second line");
    log.pump();
    CHECK(slurp(path) == "first line\nsecond line\n");
  }
  ::close(target);
}

TEST_CASE("the log file rotates by size between lines and keeps at most log_keep files", "[log]") {
  ScratchDir dir;
  const std::string path = dir.path + "/sbusd.log";
  int target = ::open("/dev/null", O_WRONLY);
  REQUIRE(target >= 0);
  const std::string line(99, 'x');  // 100 bytes with the newline
  {
    sbus::LogFile log(path, 250, 2);
    std::string error;
    REQUIRE(log.start(target, &error));
    for (int i = 0; i < 12; ++i) {
      write_line(target, line);
      log.pump();
    }
  }
  ::close(target);
  // Every file ends on a whole line; the third rotation dropped the oldest.
  for (const std::string& name : {path, path + ".1", path + ".2"}) {
    INFO(name);
    REQUIRE(std::filesystem::exists(name));
    std::string text = slurp(name);
    CHECK(text.size() % 100 == 0);
    CHECK(text.size() <= 300);
  }
  CHECK_FALSE(std::filesystem::exists(path + ".3"));
  CHECK(slurp(path + ".1").size() == 300);
}

TEST_CASE("a log file that cannot be opened is an error naming it", "[log]") {
  sbus::LogFile log("/nonexistent-dir/sbusd.log", 1024, 1);
  std::string error;
  CHECK_FALSE(log.start(STDERR_FILENO, &error));
  CHECK(error.find("/nonexistent-dir/sbusd.log") != std::string::npos);
}

TEST_CASE("reopen() writes to a new file at the path after the old one was moved away", "[log]") {
  ScratchDir dir;
  const std::string path = dir.path + "/sbusd.log";
  int target = ::open("/dev/null", O_WRONLY);
  REQUIRE(target >= 0);
  {
    sbus::LogFile log(path, 1 << 20, 3);
    std::string error;
    REQUIRE(log.start(target, &error));
    write_line(target, "before");
    log.pump();
    std::filesystem::rename(path, path + ".moved");
    write_line(target, "still to the moved file");
    log.pump();
    REQUIRE(log.reopen(&error));
    write_line(target, "after");
    log.pump();
    CHECK(slurp(path + ".moved") == "before\nstill to the moved file\n");
    CHECK(slurp(path) == "after\n");

    // A reopen that fails keeps the file in use.
    std::filesystem::remove_all(dir.path);
    CHECK_FALSE(log.reopen(&error));
    CHECK(error.find(path) != std::string::npos);
  }
  ::close(target);
}
