// The log's JSON lines (valid JSON whatever a line holds, with its fields)
// and the test of whether stderr is the journal's stream. The journal
// entries themselves are tested against a stand-in journal socket in
// tests/integration/structured_log_test.cpp.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include "base/audit_log.hpp"
#include "base/log.hpp"
#include "base/log_record.hpp"

namespace {

// Points stderr at a file of its own for the scope, then back.
class StderrToFile {
 public:
  StderrToFile() : saved_(::dup(STDERR_FILENO)) {
    char path[] = "/tmp/sbus-log-format-XXXXXX";
    file_ = ::mkstemp(path);
    path_ = path;
    ::dup2(file_, STDERR_FILENO);
  }
  ~StderrToFile() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    ::close(file_);
    ::unlink(path_.c_str());
  }
  std::string device_inode() const {
    struct stat info {};
    ::fstat(file_, &info);
    return std::to_string(info.st_dev) + ":" + std::to_string(info.st_ino);
  }
  std::string text() const {
    std::string out;
    char buffer[4096];
    for (off_t at = 0;;) {
      const ssize_t n = ::pread(file_, buffer, sizeof(buffer), at);
      if (n <= 0) return out;
      out.append(buffer, static_cast<std::size_t>(n));
      at += n;
    }
  }

 private:
  int saved_;
  int file_ = -1;
  std::string path_;
};

// Parses `line` strictly (UTF-8 validated); fails the test if it is not JSON.
rapidjson::Document parse_strict(const std::string& line) {
  rapidjson::Document document;
  document.Parse<rapidjson::kParseValidateEncodingFlag>(line.c_str(), line.size());
  INFO("line: " << line);
  INFO("error: " << rapidjson::GetParseError_En(document.GetParseError()) << " at " << document.GetErrorOffset());
  REQUIRE_FALSE(document.HasParseError());
  REQUIRE(document.IsObject());
  return document;
}

}  // namespace

TEST_CASE("a JSON log line is one valid JSON object whatever its text and fields hold", "[log]") {
  static constexpr char kStart[] = "quote\" back\\slash \n\r\t nul\0 esc\x1b bad\xff\xfe utf8 caf\xc3\xa9 ";
  const std::string hostile =
      std::string(kStart, sizeof(kStart) - 1) + "\xe2\x82" /* cut sequence */ + " </script> {\"forged\":1}";
  const std::string text = hostile;  // as the record holds it
  sbus::LogRecord record;
  record.level = sbus::LogLevel::kError;
  record.utc_time = "2026-12-07T04:50:00.123Z";
  record.tag = "worker amqp://guest@127.0.0.1:5672/%2f";
  record.pid = 4242;
  record.text = text;
  record.node = "node\"1";
  record.service = "math.add";
  record.event_id = hostile;
  record.worker_pid = "4242";
  const std::string line = sbus::log_json_line(record);
  REQUIRE(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);  // one line
  const rapidjson::Document document = parse_strict(line);
  CHECK(std::string(document["level"].GetString()) == "error");
  CHECK(std::string(document["time"].GetString()) == "2026-12-07T04:50:00.123Z");
  CHECK(document["pid"].GetInt() == 4242);
  CHECK(document["worker_pid"].GetInt() == 4242);
  CHECK(std::string(document["service"].GetString()) == "math.add");
  CHECK(std::string(document["node"].GetString()) == "node\"1");
  const std::string message(document["message"].GetString(), document["message"].GetStringLength());
  // Valid UTF-8 is kept; bytes that are not are shown as \xNN.
  CHECK(message.find("caf\xc3\xa9") != std::string::npos);
  CHECK(message.find("bad\\xff\\xfe") != std::string::npos);
  CHECK(message.find("\\xe2\\x82 </script>") != std::string::npos);
  CHECK(message.find("quote\" back\\slash \n") != std::string::npos);
  CHECK_FALSE(document.HasMember("forged"));
  CHECK_FALSE(document.HasMember("broker"));  // not set: left out
}

TEST_CASE("log_format json writes each line as a JSON object with the process's and the line's fields", "[log]") {
  StderrToFile capture;
  sbus::log_init("worker test", sbus::LogLevel::kInfo);
  REQUIRE(sbus::log_set_output(sbus::LogFormat::kJson, {"node-a", "amqp://b", 77}) == sbus::LogFormat::kJson);
  SBUS_LOG(kWarn) << sbus::log_service("test.fail") << sbus::log_event("id\n\"x") << "event id: failed\nforged";
  SBUS_LOG(kDebug) << "below the level";
  sbus::log_set_output(sbus::LogFormat::kText, {});
  const std::string text = capture.text();
  REQUIRE(!text.empty());
  CHECK(text.find('\n') == text.size() - 1);
  const rapidjson::Document document = parse_strict(text);
  CHECK(std::string(document["level"].GetString()) == "warn");
  CHECK(std::string(document["tag"].GetString()) == "worker test");
  CHECK(std::string(document["node"].GetString()) == "node-a");
  CHECK(std::string(document["broker"].GetString()) == "amqp://b");
  CHECK(std::string(document["service"].GetString()) == "test.fail");
  // Values from outside as log_value() writes them.
  CHECK(std::string(document["event_id"].GetString()) == "id\\x0a\"x");
  CHECK(std::string(document["message"].GetString()) == "event id: failed\\x0aforged");
  CHECK(document["worker_pid"].GetInt() == 77);
}

TEST_CASE("stderr is the journal only when JOURNAL_STREAM names its device and inode", "[log]") {
  StderrToFile capture;
  const char* before = std::getenv("JOURNAL_STREAM");
  const std::string saved = before != nullptr ? before : "";
  SECTION("unset: not the journal") {
    ::unsetenv("JOURNAL_STREAM");
    CHECK_FALSE(sbus::stderr_is_journal());
  }
  SECTION("naming stderr: the journal") {
    ::setenv("JOURNAL_STREAM", capture.device_inode().c_str(), 1);
    CHECK(sbus::stderr_is_journal());
  }
  SECTION("inherited, but stderr was pointed elsewhere since: not the journal") {
    ::setenv("JOURNAL_STREAM", (capture.device_inode() + "1").c_str(), 1);
    CHECK_FALSE(sbus::stderr_is_journal());
    ::setenv("JOURNAL_STREAM", "garbage", 1);
    CHECK_FALSE(sbus::stderr_is_journal());
  }
  SECTION("auto with stderr not the journal: text") {
    ::unsetenv("JOURNAL_STREAM");
    std::string why;
    CHECK(sbus::log_set_output(sbus::LogFormat::kAuto, {}, &why) == sbus::LogFormat::kText);
    CHECK(why.empty());
  }
  if (before != nullptr) {
    ::setenv("JOURNAL_STREAM", saved.c_str(), 1);
  } else {
    ::unsetenv("JOURNAL_STREAM");
  }
}

TEST_CASE("an audit line carries its caller as a field of its own: caller in JSON, CALLER in the journal",
          "[log][callers]") {
  StderrToFile capture;
  sbus::log_init("worker test", sbus::LogLevel::kInfo);
  REQUIRE(sbus::log_set_output(sbus::LogFormat::kJson, {"node-a", "amqp://b", 77}) == sbus::LogFormat::kJson);
  sbus::log_audit_call("billing", "node-a.admin.reset", "host-1-9", true, false, "denied by policy[2]");
  sbus::log_set_output(sbus::LogFormat::kText, {});
  const rapidjson::Document document = parse_strict(capture.text());
  CHECK(std::string(document["caller"].GetString()) == "billing");
  CHECK(std::string(document["event_id"].GetString()) == "host-1-9");
  CHECK(std::string(document["level"].GetString()) == "warn");
  CHECK(std::string(document["message"].GetString()).rfind("audit: caller=billing ", 0) == 0);

  // The journal entry: every field as NAME=VALUE, CALLER among them.
  static std::vector<std::string> sent;
  sent.clear();
  const auto writer = [](const iovec* fields, int count) {
    for (int i = 0; i < count; ++i) sent.emplace_back(static_cast<const char*>(fields[i].iov_base), fields[i].iov_len);
    return 0;
  };
  sbus::LogRecord record;
  record.level = sbus::LogLevel::kWarn;
  record.tag = "worker test";
  record.pid = 77;
  record.text = "audit: caller=billing";
  record.caller = "billing";
  REQUIRE(sbus::log_journal_send(writer, record));
  CHECK(std::find(sent.begin(), sent.end(), "CALLER=billing") != sent.end());
  CHECK(std::find(sent.begin(), sent.end(), "PRIORITY=4") != sent.end());
}
