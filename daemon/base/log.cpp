#include "base/log.hpp"

#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "base/log_limiter.hpp"
#include "base/log_record.hpp"

namespace sbus {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::string g_tag = "sbus";
std::mutex g_limiter_mutex;
LogLimiter g_limiter;
// Set by log_set_output() before threads start, read by every line.
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};
LogContext g_context;
std::string g_worker_pid;
JournalWriter g_writer = nullptr;

// The longest text of one line: a bigger one is cut, with a marker.
constexpr std::size_t kLineMax = 8192;

// Control characters (and DEL) as \xNN. A value from outside gets the same
// for backslashes (so that "\x0a" in it cannot pass for an escape) and for
// every byte outside ASCII; a whole line keeps those (UTF-8 text, tabs).
void append_escaped(std::string* out, std::string_view text, bool whole_line) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : text) {
    const bool keep = (c >= 0x20 && c < 0x7f && c != '\\') || (whole_line && (c >= 0x80 || c == '\t' || c == '\\'));
    if (keep) {
      out->push_back(static_cast<char>(c));
      continue;
    }
    out->append("\\x");
    out->push_back(kHex[c >> 4]);
    out->push_back(kHex[c & 0xf]);
  }
}

void write_all(const std::string& line) {
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t w = ::write(STDERR_FILENO, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    p += w;
    left -= static_cast<std::size_t>(w);
  }
}

std::string text_line(LogLevel level, const timeval& tv, const std::string& text) {
  tm local{};
  localtime_r(&tv.tv_sec, &local);
  char stamp[40];
  std::size_t n = std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &local);
  std::snprintf(stamp + n, sizeof(stamp) - n, ".%03ld", static_cast<long>(tv.tv_usec / 1000));
  std::string line;
  line.reserve(text.size() + 64);
  line += stamp;
  line += ' ';
  line += log_level_name(level);
  line += " [";
  line += g_tag;
  line += " pid=";
  line += std::to_string(getpid());
  line += "] ";
  line += text;
  line += '\n';
  return line;
}

std::string utc_time(const timeval& tv) {
  tm utc{};
  gmtime_r(&tv.tv_sec, &utc);
  char stamp[40];
  std::size_t n = std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(stamp + n, sizeof(stamp) - n, ".%03ldZ", static_cast<long>(tv.tv_usec / 1000));
  return stamp;
}

}  // namespace

bool parse_log_format(std::string_view text, LogFormat* format) {
  if (text == "auto") {
    *format = LogFormat::kAuto;
  } else if (text == "text") {
    *format = LogFormat::kText;
  } else if (text == "json") {
    *format = LogFormat::kJson;
  } else {
    return false;
  }
  return true;
}

const char* log_format_name(LogFormat format) {
  switch (format) {
    case LogFormat::kAuto: return "auto";
    case LogFormat::kText: return "text";
    case LogFormat::kJson: return "json";
    case LogFormat::kJournal: return "journal";
  }
  return "?";
}

LogFormat log_set_output(LogFormat format, LogContext context, std::string* error, JournalVia via) {
  if (format == LogFormat::kAuto) format = stderr_is_journal() ? LogFormat::kJournal : LogFormat::kText;
  JournalWriter writer = nullptr;
  if (format == LogFormat::kJournal) {
    std::string why;
    if (stderr_is_journal()) writer = via == JournalVia::kRelay ? start_journal_relay(&why) : load_journal_writer(&why);
    if (writer == nullptr) {
      if (why.empty()) why = "stderr is not the journal's stream (JOURNAL_STREAM)";
      if (error != nullptr) *error = why;
    }
  }
  log_set_output_with(format, std::move(context), writer);
  return log_format();
}

void log_set_output_with(LogFormat format, LogContext context, JournalWriter writer) {
  g_context = std::move(context);
  g_worker_pid = g_context.worker_pid > 0 ? std::to_string(g_context.worker_pid) : std::string();
  if (format == LogFormat::kAuto || (format == LogFormat::kJournal && writer == nullptr)) format = LogFormat::kText;
  g_writer = format == LogFormat::kJournal ? writer : nullptr;
  g_format.store(static_cast<int>(format), std::memory_order_relaxed);
}

LogFormat log_format() {
  return static_cast<LogFormat>(g_format.load(std::memory_order_relaxed));
}

const LogContext& log_context() {
  return g_context;
}

JournalWriter log_journal_writer() {
  return log_format() == LogFormat::kJournal ? g_writer : nullptr;
}

std::string log_value(std::string_view text, std::size_t max) {
  std::string out;
  out.reserve(std::min(text.size(), max) + 8);
  append_escaped(&out, text.substr(0, max), false);
  if (text.size() > max) out += "...[" + std::to_string(text.size()) + " bytes]";
  return out;
}

bool log_admit(LogLevel level, std::string_view kind) {
  LogLimiter::Verdict verdict;
  {
    std::lock_guard<std::mutex> lock(g_limiter_mutex);
    verdict = g_limiter.admit(kind, std::chrono::steady_clock::now());
  }
  if (verdict.suppressed > 0) {
    LogLine(level) << verdict.suppressed << " similar messages suppressed (" << kind << ")";
  }
  return verdict.write;
}

bool parse_log_level(std::string_view text, LogLevel* level) {
  if (text == "debug") {
    *level = LogLevel::kDebug;
  } else if (text == "info") {
    *level = LogLevel::kInfo;
  } else if (text == "warn" || text == "warning") {
    *level = LogLevel::kWarn;
  } else if (text == "error") {
    *level = LogLevel::kError;
  } else {
    return false;
  }
  return true;
}

const char* log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "?";
}

void log_init(std::string tag, LogLevel level) {
  g_tag = std::move(tag);
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

const std::string& log_tag() {
  return g_tag;
}

LogLevel log_level() {
  return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed));
}

std::string log_escape(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

bool log_enabled(LogLevel level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

LogLine::~LogLine() {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  // The text as one line whatever it holds (the code's own text is
  // printable; a value from outside should come through log_value()).
  std::string text;
  {
    const std::string raw = stream_.str();
    text.reserve(std::min(raw.size(), kLineMax) + 16);
    append_escaped(&text, std::string_view(raw).substr(0, kLineMax), true);
    if (raw.size() > kLineMax) text += "...[" + std::to_string(raw.size()) + " bytes]";
  }
  const LogFormat format = log_format();
  if (format == LogFormat::kText) {
    write_all(text_line(level_, tv, text));
    return;
  }
  const auto field = [this](LogField::Key key) -> const std::string& { return fields_[static_cast<int>(key)]; };
  const std::string time = format == LogFormat::kJson ? utc_time(tv) : std::string();
  LogRecord record;
  record.level = level_;
  record.utc_time = time;
  record.tag = g_tag;
  record.pid = getpid();
  record.text = text;
  record.node = g_context.node;
  record.broker = field(LogField::Key::kBroker).empty() ? g_context.broker : field(LogField::Key::kBroker);
  record.service = field(LogField::Key::kService);
  record.event_id = field(LogField::Key::kEventId);
  record.caller = field(LogField::Key::kCaller);
  record.worker_pid = field(LogField::Key::kWorkerPid).empty() ? g_worker_pid : field(LogField::Key::kWorkerPid);
  if (format == LogFormat::kJson) {
    write_all(log_json_line(record));
  } else if (!log_journal_send(g_writer, record)) {
    // The journal refused it (journald gone): stderr, its stream, still
    // takes the text.
    write_all(text_line(level_, tv, text));
  }
}

}  // namespace sbus
