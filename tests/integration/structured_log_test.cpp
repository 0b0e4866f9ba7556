// sbusd's structured logs. Under systemd (JOURNAL_STREAM naming stderr) each
// line is a native journal entry with its fields; here a datagram socket of
// the test stands in for journald's: sbusd runs in a mount namespace of its
// own where a temp folder is bound over /run, so that libsystemd's
// sd_journal_sendv reaches /run/systemd/journal/socket, the test's. With
// `log_format: json` each line is a JSON object with the same fields.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <poll.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <endian.h>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <rapidjson/document.h>

#include "harness.hpp"

using namespace std::chrono_literals;
using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using sbus_test::wait_until;

namespace {

// One datagram: the fields, and the pid of the process that sent it (from
// the socket's credentials, as journald takes _PID).
struct Entry {
  pid_t sender = 0;
  std::multimap<std::string, std::string> fields;

  std::string get(const std::string& key) const {
    auto it = fields.find(key);
    return it == fields.end() ? std::string() : it->second;
  }
};

// The journal's native protocol (systemd's JOURNAL_NATIVE_PROTOCOL):
// "KEY=VALUE\n", or for a value that holds a line feed "KEY\n", its length
// as 64-bit little endian, the value and "\n".
bool parse_native(const std::string& data, Entry* entry) {
  std::size_t at = 0;
  while (at < data.size()) {
    const std::size_t line_end = data.find('\n', at);
    if (line_end == std::string::npos) return false;
    const std::size_t equals = data.find('=', at);
    if (equals != std::string::npos && equals < line_end) {
      entry->fields.emplace(data.substr(at, equals - at), data.substr(equals + 1, line_end - equals - 1));
      at = line_end + 1;
      continue;
    }
    if (line_end + 9 > data.size()) return false;
    std::uint64_t length = 0;
    std::memcpy(&length, data.data() + line_end + 1, 8);
    length = le64toh(length);
    const std::size_t value_at = line_end + 9;
    if (value_at + length + 1 > data.size() || data[value_at + length] != '\n') return false;
    entry->fields.emplace(data.substr(at, line_end - at), data.substr(value_at, length));
    at = value_at + length + 1;
  }
  return true;
}

std::string read_whole(int fd) {
  std::string out;
  char buffer[65536];
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(fd, buffer, sizeof(buffer), at);
    if (n <= 0) return out;
    out.append(buffer, static_cast<std::size_t>(n));
    at += n;
  }
}

// The stand-in journal: a datagram socket at FOLDER/systemd/journal/socket
// and a thread that reads it as journald would (entries too big for a
// datagram come as a memfd passed with SCM_RIGHTS).
class JournalStandIn {
 public:
  JournalStandIn() {
    std::filesystem::create_directories(dir_.file("systemd/journal"));
    const std::string path = dir_.file("systemd/journal/socket");
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof(address.sun_path));
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    const int on = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on));
    const int buffer = 8 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof(buffer));
    reader_ = std::thread([this] { read_loop(); });
  }
  ~JournalStandIn() {
    stop_ = true;
    if (reader_.joinable()) reader_.join();
    if (fd_ >= 0) ::close(fd_);
  }

  // The wrapper that runs sbusd with this journal: a mount namespace of its
  // own (as root; a user namespace too otherwise) with the folder over /run.
  // `also` is more shell to run there before sbusd starts.
  std::vector<std::string> command_prefix(const std::string& also = "true") const {
    std::vector<std::string> prefix = {"/usr/bin/unshare", "-m", "--propagation", "private"};
    if (::geteuid() != 0) prefix.push_back("-r");
    prefix.insert(prefix.end(),
                  {"/bin/sh", "-c", "mount --bind \"$0\" /run && " + also + " && exec \"$@\"", dir_.path()});
    return prefix;
  }
  // Stops reading and closes the socket, leaving its file: a journald that
  // is gone (sends are refused). A missing file would be another case:
  // libsystemd then drops entries without an error.
  void close_socket() {
    stop_ = true;
    if (reader_.joinable()) reader_.join();
    ::close(fd_);
    fd_ = -1;
  }

  std::vector<Entry> entries() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return entries_;
  }
  int unparsed() const { return unparsed_; }

 private:
  void read_loop() {
    std::vector<char> buffer(1 << 20);
    while (!stop_) {
      pollfd poll_fd{fd_, POLLIN, 0};
      if (::poll(&poll_fd, 1, 100) <= 0) continue;
      iovec vector{buffer.data(), buffer.size()};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * 4)];
      msghdr message{};
      message.msg_iov = &vector;
      message.msg_iovlen = 1;
      message.msg_control = control;
      message.msg_controllen = sizeof(control);
      const ssize_t n = ::recvmsg(fd_, &message, MSG_CMSG_CLOEXEC);
      if (n < 0) continue;
      Entry entry;
      std::string data(buffer.data(), static_cast<std::size_t>(n));
      for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
          ucred credentials{};
          std::memcpy(&credentials, CMSG_DATA(c), sizeof(credentials));
          entry.sender = credentials.pid;
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
          int memfd = -1;
          std::memcpy(&memfd, CMSG_DATA(c), sizeof(int));
          data = read_whole(memfd);
          ::close(memfd);
        }
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (parse_native(data, &entry)) {
        entries_.push_back(std::move(entry));
      } else {
        ++unparsed_;
      }
    }
  }

  sbus_test::TempDir dir_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;
  std::atomic<int> unparsed_{0};
  std::thread reader_;
};

const char* const kServices =
    "  - name: math.add\n    plugin: math\n"
    "  - name: test.fail\n    plugin: test\n"
    "  - name: test.log\n    plugin: test\n"
    "  - name: test.crash\n    plugin: test\n";

std::vector<Entry> with(const std::vector<Entry>& entries, const std::string& key, const std::string& part) {
  std::vector<Entry> found;
  for (const Entry& entry : entries) {
    auto [first, last] = entry.fields.equal_range(key);
    for (auto it = first; it != last; ++it) {
      if (it->second.find(part) != std::string::npos) {
        found.push_back(entry);
        break;
      }
    }
  }
  return found;
}

std::string describe(const std::vector<Entry>& entries) {
  std::ostringstream out;
  for (const Entry& entry : entries) {
    out << "[pid " << entry.sender << "]";
    for (const auto& [key, value] : entry.fields) out << " " << key << "=" << value;
    out << "\n";
  }
  return out.str();
}

}  // namespace

TEST_CASE("Under systemd sbusd writes native journal entries with its fields, one a line", "[log][journal]") {
  JournalStandIn journal;
  SbusdOptions options;
  options.journal_stream = true;
  options.command_prefix = journal.command_prefix();
  options.services_yaml = kServices;
  SbusdProcess sbusd(options);
  const std::string port = std::to_string(sbus_test::broker_port());
  sbus::Sender sender(sbusd.sender_options());

  // The supervisor's own lines: its pid, the node, sbusd as identifier.
  REQUIRE(wait_until([&] { return !with(journal.entries(), "MESSAGE", "started: node").empty(); }, 10s));
  // The relay process that writes the supervisor's entries, and the
  // workers' too: journald's _PID of each.
  const pid_t relay = with(journal.entries(), "MESSAGE", "started: node").front().sender;
  {
    const std::vector<Entry> entries = journal.entries();
    INFO(describe(entries));
    const Entry started = with(entries, "MESSAGE", "started: node").front();
    // Sent through the relay process, which maps libsystemd so that the
    // supervisor does not.
    CHECK(started.get("SYSLOG_PID") == std::to_string(sbusd.pid()));
    CHECK(started.sender != sbusd.pid());
    CHECK_FALSE(sbus_test::maps_library(sbus_test::mapped_libraries(sbusd.pid()), "libsystemd.so"));
    CHECK(started.get("PRIORITY") == "6");
    CHECK(started.get("SYSLOG_IDENTIFIER") == "sbusd");
    CHECK(started.get("NODE") == sbusd.node());
    CHECK(started.get("WORKER_PID").empty());
    // The worker's start, as the supervisor saw it: its broker and pid.
    const std::vector<Entry> worker_started = with(entries, "MESSAGE", "started, pid");
    REQUIRE(!worker_started.empty());
    CHECK(worker_started.front().get("BROKER").find(":" + port) != std::string::npos);
    CHECK(!worker_started.front().get("WORKER_PID").empty());
  }

  SECTION("a failing call: a warning naming its service and event, from the worker") {
    const sbus::CallResult failed = sender.call(sbusd.address("test.fail"), "[]", 10s);
    REQUIRE_FALSE(failed.ok());
    REQUIRE(wait_until([&] { return !with(journal.entries(), "MESSAGE", "test.fail always fails").empty(); }, 10s));
    const std::vector<Entry> entries = journal.entries();
    INFO(describe(entries));
    // Its debug line (the call read) names them too.
    CHECK(with(entries, "SERVICE", "test.fail").size() >= 2);
    const Entry line = with(entries, "MESSAGE", "test.fail always fails").front();
    CHECK(line.get("SERVICE") == "test.fail");
    CHECK(line.get("PRIORITY") == "4");
    CHECK(!line.get("EVENT_ID").empty());
    CHECK(line.get("MESSAGE").find("event " + line.get("EVENT_ID") + ": test.fail: ") == 0);
    CHECK(line.get("NODE") == sbusd.node());
    CHECK(line.get("BROKER").find(":" + port) != std::string::npos);
    // Through the supervisor's relay: the worker's pid in its fields, and
    // no libsystemd in the worker.
    const std::string worker = line.get("WORKER_PID");
    CHECK(line.get("SYSLOG_PID") == worker);
    CHECK(worker != std::to_string(sbusd.pid()));
    CHECK(worker != std::to_string(relay));
    CHECK(line.sender == relay);
    CHECK_FALSE(sbus_test::maps_library(sbus_test::mapped_libraries(std::atoi(worker.c_str())), "libsystemd.so"));
  }

  SECTION("plugin lines from many calls at once: one entry a line, each with the worker's fields") {
    constexpr int kThreads = 4;
    constexpr int kCalls = 25;
    const auto text_of = [](int t, int i) {
      return "t" + std::to_string(t) + "-c" + std::to_string(i) + "-" + std::string(300, 'x');
    };
    std::vector<std::thread> threads;
    std::atomic<int> answered{0};
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        sbus::Sender own(sbusd.sender_options());
        for (int i = 0; i < kCalls; ++i) {
          answered += own.call(sbusd.address("test.log"), "[\"" + text_of(t, i) + "\"]", 20s).ok();
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    REQUIRE(answered == kThreads * kCalls);
    REQUIRE(wait_until([&] { return with(journal.entries(), "MESSAGE", "info line: t").size() >= kThreads * kCalls; },
                       10s));
    const std::vector<Entry> entries = journal.entries();
    CHECK(journal.unparsed() == 0);
    const std::vector<Entry> lines = with(entries, "MESSAGE", "info line: t");
    CHECK(lines.size() == kThreads * kCalls);
    // Each line whole, in an entry of its own.
    std::multiset<std::string> messages;
    for (const Entry& line : lines) messages.insert(line.get("MESSAGE"));
    for (int t = 0; t < kThreads; ++t) {
      for (int i = 0; i < kCalls; ++i) CHECK(messages.count("test.log: info line: " + text_of(t, i)) == 1);
    }
    for (const Entry& line : lines) {
      INFO(describe({line}));
      CHECK(line.fields.count("MESSAGE") == 1);
      CHECK(line.get("SERVICE") == "test.log");
      CHECK(line.get("PRIORITY") == "6");
      CHECK(line.get("SYSLOG_PID") == line.get("WORKER_PID"));
      CHECK(line.get("WORKER_PID") != std::to_string(sbusd.pid()));
      CHECK(line.sender == relay);
      CHECK(line.get("BROKER").find(":" + port) != std::string::npos);
    }
  }

  SECTION("a crashed worker: an error entry from the supervisor naming the worker's pid and broker") {
    std::thread call([&] {
      sbus::Sender own(sbusd.sender_options());
      own.call(sbusd.address("test.crash"), "null", 5s);
    });
    call.join();
    REQUIRE(wait_until([&] { return !with(journal.entries(), "MESSAGE", "killed by signal").empty(); }, 15s));
    const std::vector<Entry> entries = journal.entries();
    INFO(describe(entries));
    const Entry crash = with(entries, "MESSAGE", "killed by signal").front();
    CHECK(crash.get("PRIORITY") == "3");
    CHECK(crash.get("SYSLOG_PID") == std::to_string(sbusd.pid()));
    CHECK(!crash.get("WORKER_PID").empty());
    CHECK(crash.get("WORKER_PID") != std::to_string(sbusd.pid()));
    CHECK(crash.get("BROKER").find(":" + port) != std::string::npos);
  }

  // Nothing went to stderr as text once the journal was in use.
  const std::string text = sbusd.log();
  INFO(text);
  CHECK(text.find("started: node") == std::string::npos);
  CHECK(text.find(" info [") == std::string::npos);
}

TEST_CASE("log_format json writes one JSON object a line, with the fields, whatever a caller sends", "[log][json]") {
  SbusdOptions options;
  options.services_yaml = kServices;
  options.extra_yaml = "log_format: json\n";
  SbusdProcess sbusd(options);
  sbus::Sender sender(sbusd.sender_options());
  REQUIRE_FALSE(sender.call(sbusd.address("test.fail"), "[]", 10s).ok());
  // A refused call whose id holds what would break a naive writer.
  sbus_test::RawAmqp raw;
  const std::string reply_queue = raw.declare_reply_queue();
  const std::string hostile = "evil\n\"}{\\\"level\\\":\\\"forged\\\"} \xc3\xa9 \t end";
  raw.publish("py-servicebus", sbusd.node(), sbus_test::py_call_body(hostile, "not the secret", "math", "add", "[1,2]"),
              reply_queue, "evil");
  REQUIRE(raw.receive(10s));
  REQUIRE(wait_until([&] { return sbusd.log().find("invalid_token") != std::string::npos; }, 10s));
  REQUIRE(wait_until([&] { return sbusd.log().find("test.fail always fails") != std::string::npos; }, 10s));

  const std::string log = sbusd.log();
  INFO(log);
  std::istringstream lines(log);
  int parsed = 0;
  bool saw_fail = false;
  bool saw_hostile = false;
  for (std::string line; std::getline(lines, line);) {
    rapidjson::Document document;
    document.Parse<rapidjson::kParseValidateEncodingFlag>(line.c_str(), line.size());
    INFO("line: " << line);
    REQUIRE_FALSE(document.HasParseError());
    REQUIRE(document.IsObject());
    ++parsed;
    CHECK(document.HasMember("time"));
    CHECK(document.HasMember("level"));
    CHECK(document.HasMember("message"));
    const std::string message = document["message"].GetString();
    if (message.find("test.fail always fails") != std::string::npos) {
      saw_fail = true;
      CHECK(std::string(document["level"].GetString()) == "warn");
      CHECK(std::string(document["service"].GetString()) == "test.fail");
      CHECK(document.HasMember("event_id"));
      CHECK(std::string(document["node"].GetString()) == sbusd.node());
      CHECK(document["worker_pid"].IsInt());
      CHECK(document.HasMember("broker"));
    }
    if (message.find("invalid_token") != std::string::npos) {
      saw_hostile = true;
      CHECK(std::string(document["service"].GetString()) == "math.add");
      // The id as log_value() writes it: escaped, one line.
      CHECK(std::string(document["event_id"].GetString()).rfind("evil\\x0a\"}{\\x5c\"level", 0) == 0);
      CHECK_FALSE(document.HasMember("forged"));
    }
  }
  CHECK(parsed > 3);
  CHECK(saw_fail);
  CHECK(saw_hostile);
}

TEST_CASE("When the journal cannot be used, sbusd's lines are written as text instead", "[log][journal]") {
  JournalStandIn journal;
  SbusdOptions options;
  options.journal_stream = true;
  options.services_yaml = kServices;
  SECTION("the journal module cannot be loaded: a warning, then text") {
    // An empty file in its place, in sbusd's mount namespace only.
    options.command_prefix =
        journal.command_prefix("mount --bind /dev/null " SBUS_BUILD_DIR "/libexec/sbus/sbus-journal.so");
    SbusdProcess sbusd(options);
    sbus::Sender sender(sbusd.sender_options());
    REQUIRE_FALSE(sender.call(sbusd.address("test.fail"), "[]", 10s).ok());
    REQUIRE(wait_until([&] { return sbusd.log().find("test.fail always fails") != std::string::npos; }, 10s));
    const std::string log = sbusd.log();
    INFO(log);
    // Said by the supervisor and by the worker.
    CHECK(log.find("[supervisor pid=" + std::to_string(sbusd.pid()) +
                   "] log_format auto: the journal module sbus-journal.so cannot be loaded") != std::string::npos);
    CHECK(log.find("] log_format auto: the journal module sbus-journal.so cannot be loaded") !=
          log.rfind("] log_format auto: the journal module sbus-journal.so cannot be loaded"));
    CHECK(log.find("started: node " + sbusd.node()) != std::string::npos);
    CHECK(with(journal.entries(), "MESSAGE", "test.fail always fails").empty());
  }
  SECTION("journald is gone: each line as text on stderr") {
    journal.close_socket();
    options.command_prefix = journal.command_prefix();
    SbusdProcess sbusd(options);
    sbus::Sender sender(sbusd.sender_options());
    REQUIRE_FALSE(sender.call(sbusd.address("test.fail"), "[]", 10s).ok());
    INFO(sbusd.log());
    REQUIRE(wait_until([&] { return sbusd.log().find("test.fail always fails") != std::string::npos; }, 10s));
    const std::string log = sbusd.log();
    // The supervisor's, through the relay, and the worker's own.
    CHECK(log.find("[supervisor pid=" + std::to_string(sbusd.pid()) + "] sbusd ") != std::string::npos);
    CHECK(log.find("] event ") != std::string::npos);
  }
}
