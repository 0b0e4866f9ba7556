#include "proc_stats.hpp"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace bench {
namespace {

// The fields of /proc/PID/stat after "(comm)": the comm may hold spaces and
// parentheses, so the split starts after the last ')'.
bool stat_fields(pid_t pid, std::vector<std::string>* fields) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  const std::size_t close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 1));
  fields->clear();
  for (std::string field; rest >> field;) fields->push_back(field);
  return fields->size() > 12;
}

}  // namespace

double cpu_seconds(pid_t pid) {
  // After the comm: state(0) ppid(1) ... utime(11) stime(12).
  std::vector<std::string> fields;
  if (!stat_fields(pid, &fields)) return 0;
  const double ticks = std::strtod(fields[11].c_str(), nullptr) + std::strtod(fields[12].c_str(), nullptr);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

long private_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  long kib = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Private_Clean:", 0) == 0 || line.rfind("Private_Dirty:", 0) == 0) {
      kib += std::strtol(line.c_str() + line.find(':') + 1, nullptr, 10);
    }
  }
  return kib;
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> children;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return children;
  std::vector<std::string> fields;
  while (dirent* entry = readdir(proc)) {
    char* end = nullptr;
    const long candidate = std::strtol(entry->d_name, &end, 10);
    if (*end != '\0' || candidate <= 0) continue;
    if (stat_fields(static_cast<pid_t>(candidate), &fields) && fields[0] != "Z" &&
        std::strtol(fields[1].c_str(), nullptr, 10) == pid) {
      children.push_back(static_cast<pid_t>(candidate));
    }
  }
  closedir(proc);
  return children;
}

double tree_cpu_seconds(pid_t pid) {
  double total = cpu_seconds(pid);
  for (pid_t child : children_of(pid)) total += cpu_seconds(child);
  return total;
}

long voluntary_switches(pid_t pid) {
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  DIR* dir = opendir(tasks.c_str());
  if (dir == nullptr) return 0;
  long total = 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream in(tasks + "/" + entry->d_name + "/status");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) {
        total += std::strtol(line.c_str() + line.find(':') + 1, nullptr, 10);
        break;
      }
    }
  }
  closedir(dir);
  return total;
}

long tree_voluntary_switches(pid_t pid) {
  long total = voluntary_switches(pid);
  for (pid_t child : children_of(pid)) total += voluntary_switches(child);
  return total;
}

}  // namespace bench
