#include "base/module_file.hpp"

#include <dlfcn.h>
#include <link.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace sbus {
namespace {

namespace fs = std::filesystem;

// The folder of the program or shared object that holds this code.
fs::path own_folder() {
  Dl_info info{};
  link_map* map = nullptr;
  if (dladdr1(reinterpret_cast<void*>(&own_folder), &info, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) == 0 ||
      map == nullptr) {
    return {};
  }
  // The main program's link map has no name.
  std::error_code ignored;
  const fs::path file = map->l_name[0] == '\0' ? fs::read_symlink("/proc/self/exe", ignored) : fs::path(map->l_name);
  return fs::absolute(file, ignored).parent_path();
}

}  // namespace

std::vector<std::string> module_candidates(const char* env_var, const char* file_name, const std::string& installed) {
  if (const char* path = std::getenv(env_var); path != nullptr && *path != '\0') return {path};
  std::vector<std::string> candidates;
  const fs::path here = own_folder();
  if (!here.empty()) {
    candidates.push_back((here / file_name).string());
    candidates.push_back((here.parent_path() / "libexec" / "sbus" / file_name).lexically_normal().string());
  }
  if (std::find(candidates.begin(), candidates.end(), installed) == candidates.end()) candidates.push_back(installed);
  return candidates;
}

void* load_module_entry(const std::vector<std::string>& candidates, const char* kind, const char* file_name,
                        const char* symbol, std::string* error) {
  std::string tried;
  for (const std::string& path : candidates) {
    if (!tried.empty()) tried += "; ";
    struct stat status {};
    if (::stat(path.c_str(), &status) != 0) {
      tried += path + ": " + (errno == ENOENT ? std::string("no such file") : std::strerror(errno));
      continue;
    }
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = dlerror();
      tried += path + ": " + (why != nullptr ? why : "cannot be loaded");
      continue;
    }
    if (void* entry = dlsym(handle, symbol)) return entry;
    tried += path + ": not an sbus " + std::string(kind) + " module (no " + symbol + ")";
    dlclose(handle);
  }
  *error = "the " + std::string(kind) + " module " + file_name + " cannot be loaded (" + tried + ")";
  return nullptr;
}

}  // namespace sbus
