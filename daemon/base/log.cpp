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

namespace sbus {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::string g_tag = "sbus";
std::mutex g_limiter_mutex;
LogLimiter g_limiter;

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

}  // namespace

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
  tm local{};
  localtime_r(&tv.tv_sec, &local);
  char stamp[40];
  std::size_t n = std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &local);
  std::snprintf(stamp + n, sizeof(stamp) - n, ".%03ld", static_cast<long>(tv.tv_usec / 1000));

  std::string line;
  line.reserve(128);
  line += stamp;
  line += ' ';
  line += log_level_name(level_);
  line += " [";
  line += g_tag;
  line += " pid=";
  line += std::to_string(getpid());
  line += "] ";
  // The text as one line whatever it holds (the code's own text is
  // printable; a value from outside should come through log_value()).
  const std::string text = stream_.str();
  append_escaped(&line, std::string_view(text).substr(0, kLineMax), true);
  if (text.size() > kLineMax) line += "...[" + std::to_string(text.size()) + " bytes]";
  line += '\n';

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

}  // namespace sbus
