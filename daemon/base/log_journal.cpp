// The journal format: detection of the journal's stream, and sbus-journal.so,
// the module that holds libsystemd (loaded only when the journal is used,
// so the supervisor maps libsystemd and its compression libraries only
// then).
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "base/log_record.hpp"
#include "base/module_file.hpp"

namespace sbus {
namespace {

constexpr const char* kModuleName = "sbus-journal.so";
constexpr const char* kWriterSymbol = "sbus_journal_sendv";

std::vector<std::string> journal_candidates() {
  return module_candidates("SBUS_JOURNAL_MODULE", kModuleName, SBUS_JOURNAL_MODULE_INSTALLED);
}

JournalWriter load_once(std::string* error) {
  const std::vector<std::string> candidates = journal_candidates();
  return reinterpret_cast<JournalWriter>(load_module_entry(candidates, "journal", kModuleName, kWriterSymbol, error));
}

// The supervisor's end of the relay's socket (start_journal_relay()), also
// a worker's (adopt_journal_relay()), and the writer that sends to it.
int g_relay_fd = -1;
JournalWriter g_relay_started = nullptr;

// Sends one entry to the relay as one packet: the fields joined by line
// feeds (no field holds one: the text and the values are escaped). Never
// blocks: a relay that does not keep up makes the line fall back to text.
int relay_writer(const iovec* fields, int count) {
  std::string packet;
  for (int i = 0; i < count; ++i) {
    const char* base = static_cast<const char*>(fields[i].iov_base);
    if (std::memchr(base, '\n', fields[i].iov_len) != nullptr) return -EINVAL;
    if (i > 0) packet += '\n';
    packet.append(base, fields[i].iov_len);
  }
  const ssize_t sent = ::send(g_relay_fd, packet.data(), packet.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  return sent == static_cast<ssize_t>(packet.size()) ? 0 : -errno;
}

// A line journald refused, as text on stderr (systemd's stream to the
// journal too): "[TAG pid=PID] MESSAGE".
void write_as_text(const std::vector<iovec>& fields) {
  std::string tag;
  std::string pid;
  std::string message;
  for (const iovec& field : fields) {
    const std::string_view text(static_cast<const char*>(field.iov_base), field.iov_len);
    if (text.rfind("SBUS_TAG=", 0) == 0) tag = text.substr(9);
    if (text.rfind("SYSLOG_PID=", 0) == 0) pid = text.substr(11);
    if (text.rfind("MESSAGE=", 0) == 0) message = text.substr(8);
  }
  const std::string line = "[" + tag + " pid=" + pid + "] " + message + "\n";
  [[maybe_unused]] const ssize_t written = ::write(STDERR_FILENO, line.data(), line.size());
}

// The relay process: each packet becomes one journal entry. Ends when every
// holder of the other end (the supervisor and the processes it forked) has
// closed it, so that the supervisor's last lines are written too; the
// signals the supervisor blocked stay blocked here.
[[noreturn]] void relay_loop(int fd) {
  // First word to the supervisor: "ok", or why the module did not load.
  std::string error;
  const JournalWriter writer = load_journal_writer(&error);
  const std::string hello = writer != nullptr ? std::string("ok") : error;
  if (::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) < 0 || writer == nullptr) _exit(1);
  std::vector<char> buffer(1 << 17);
  for (;;) {
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(0);
    std::vector<iovec> fields;
    char* at = buffer.data();
    char* const end = at + n;
    while (at < end) {
      char* line_end = static_cast<char*>(std::memchr(at, '\n', static_cast<std::size_t>(end - at)));
      if (line_end == nullptr) line_end = end;
      fields.push_back({at, static_cast<std::size_t>(line_end - at)});
      at = line_end + 1;
    }
    if (writer(fields.data(), static_cast<int>(fields.size())) < 0) write_as_text(fields);
  }
}

// syslog(3) priorities.
int priority_of(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return 7;
    case LogLevel::kInfo: return 6;
    case LogLevel::kWarn: return 4;
    case LogLevel::kError: return 3;
  }
  return 6;
}

}  // namespace

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  unsigned long long device = 0;
  unsigned long long inode = 0;
  char rest = 0;
  if (std::sscanf(stream, "%llu:%llu%c", &device, &inode, &rest) != 2) return false;
  struct stat info {};
  if (::fstat(STDERR_FILENO, &info) != 0) return false;
  return static_cast<unsigned long long>(info.st_dev) == device &&
         static_cast<unsigned long long>(info.st_ino) == inode;
}

JournalWriter load_journal_writer(std::string* error) {
  // The module stays loaded for the life of the process.
  static std::once_flag once;
  static JournalWriter writer = nullptr;
  static std::string load_error;
  std::call_once(once, [] { writer = load_once(&load_error); });
  if (writer == nullptr) *error = load_error;
  return writer;
}

JournalWriter start_journal_relay(std::string* error) {
  if (g_relay_started != nullptr) return g_relay_started;
  bool found = false;
  for (const std::string& path : journal_candidates()) found = found || ::access(path.c_str(), R_OK) == 0;
  if (!found) {
    *error = std::string("the journal module ") + kModuleName + " is not installed";
    return nullptr;
  }
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    *error = std::string("socketpair failed: ") + std::strerror(errno);
    return nullptr;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    *error = std::string("fork failed: ") + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return nullptr;
  }
  if (pid == 0) {
    ::close(fds[0]);
    prctl(PR_SET_NAME, "sbusd-journal");
    relay_loop(fds[1]);
  }
  ::close(fds[1]);
  // Wait for the relay's word, so that no line is sent to a relay that
  // could not load the module (bounded: loading takes milliseconds).
  char hello[1024];
  pollfd ready{fds[0], POLLIN, 0};
  const ssize_t n = ::poll(&ready, 1, 10000) == 1 ? ::recv(fds[0], hello, sizeof(hello), 0) : -1;
  if (n != 2 || std::memcmp(hello, "ok", 2) != 0) {
    *error = n > 0 ? std::string(hello, static_cast<std::size_t>(n)) : "the journal relay did not start";
    ::close(fds[0]);
    return nullptr;
  }
  g_relay_fd = fds[0];
  g_relay_started = &relay_writer;
  return g_relay_started;
}

int journal_relay_fd() {
  return g_relay_fd;
}

void adopt_journal_relay(int fd) {
  if (fd < 0 || g_relay_started != nullptr) return;
  g_relay_fd = fd;
  g_relay_started = &relay_writer;
}

bool journal_relay_adopted() {
  return g_relay_started != nullptr;
}

bool log_journal_send(JournalWriter writer, const LogRecord& record) {
  std::string fields[12];
  int count = 0;
  auto add = [&](std::string_view name, std::string_view value) {
    if (value.empty()) return;
    fields[count].reserve(name.size() + 1 + value.size());
    fields[count] += name;
    fields[count] += '=';
    fields[count] += value;
    ++count;
  };
  add("MESSAGE", record.text.empty() ? std::string_view("-") : record.text);
  const std::string priority = std::to_string(priority_of(record.level));
  add("PRIORITY", priority);
  add("SYSLOG_IDENTIFIER", "sbusd");
  // The writer's own pid: the supervisor's entries reach the journal through
  // a relay process, whose pid journald records as _PID.
  const std::string pid = std::to_string(record.pid);
  add("SYSLOG_PID", pid);
  add("SBUS_TAG", record.tag);
  add("NODE", record.node);
  add("BROKER", record.broker);
  add("SERVICE", record.service);
  add("EVENT_ID", record.event_id);
  add("WORKER_PID", record.worker_pid);
  add("CALLER", record.caller);
  iovec vectors[12];
  for (int i = 0; i < count; ++i) vectors[i] = {fields[i].data(), fields[i].size()};
  return writer(vectors, count) >= 0;
}

}  // namespace sbus
