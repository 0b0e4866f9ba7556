// The journal format: detection of the journal's stream, and sbus-journal.so,
// the module that holds libsystemd (loaded only when the journal is used,
// so the supervisor maps libsystemd and its compression libraries only
// then).
#include <dlfcn.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#include "base/log_record.hpp"

namespace fs = std::filesystem;

namespace sbus {
namespace {

constexpr const char* kModuleName = "sbus-journal.so";
constexpr const char* kWriterSymbol = "sbus_journal_sendv";

// The folder of the program or shared object that holds this code.
fs::path own_folder() {
  Dl_info info{};
  link_map* map = nullptr;
  if (dladdr1(reinterpret_cast<void*>(&own_folder), &info, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) == 0 ||
      map == nullptr) {
    return {};
  }
  std::error_code ignored;
  const fs::path file = map->l_name[0] == '\0' ? fs::read_symlink("/proc/self/exe", ignored) : fs::path(map->l_name);
  return fs::absolute(file, ignored).parent_path();
}

std::vector<std::string> module_candidates() {
  std::vector<std::string> candidates;
  const fs::path here = own_folder();
  if (!here.empty()) {
    candidates.push_back((here / kModuleName).string());
    candidates.push_back((here.parent_path() / "libexec" / "sbus" / kModuleName).lexically_normal().string());
  }
  candidates.push_back(SBUS_JOURNAL_MODULE_INSTALLED);
  return candidates;
}

JournalWriter load_once(std::string* error) {
  std::string tried;
  for (const std::string& path : module_candidates()) {
    if (::access(path.c_str(), R_OK) != 0) continue;
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = dlerror();
      tried += (tried.empty() ? "" : "; ") + path + ": " + (why != nullptr ? why : "cannot be loaded");
      continue;
    }
    if (void* entry = dlsym(handle, kWriterSymbol)) return reinterpret_cast<JournalWriter>(entry);
    tried += (tried.empty() ? "" : "; ") + path + ": no " + kWriterSymbol;
    dlclose(handle);
  }
  *error = std::string("the journal module ") + kModuleName + " cannot be loaded (" +
           (tried.empty() ? "not found" : tried) + ")";
  return nullptr;
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
  return static_cast<unsigned long long>(info.st_dev) == device && static_cast<unsigned long long>(info.st_ino) == inode;
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

bool log_journal_send(JournalWriter writer, const LogRecord& record) {
  std::string fields[10];
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
  add("SBUS_TAG", record.tag);
  add("NODE", record.node);
  add("BROKER", record.broker);
  add("SERVICE", record.service);
  add("EVENT_ID", record.event_id);
  add("WORKER_PID", record.worker_pid);
  iovec vectors[10];
  for (int i = 0; i < count; ++i) vectors[i] = {fields[i].data(), fields[i].size()};
  return writer(vectors, count) >= 0;
}

}  // namespace sbus
