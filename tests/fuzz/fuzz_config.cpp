// libFuzzer target: the YAML config, as sbusd --check reads it. Relative
// paths resolve against an empty temporary folder; stdin is /dev/null, so
// that a secret_file such as /dev/stdin cannot block.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace {
std::string config_path;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char dir[] = "/tmp/sbus-fuzz-config.XXXXXX";
  if (::mkdtemp(dir) == nullptr) std::abort();
  config_path = std::string(dir) + "/sbusd.yaml";
  const int null = ::open("/dev/null", O_RDONLY);
  if (null < 0 || ::dup2(null, STDIN_FILENO) < 0) std::abort();
  ::close(null);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  sbus::Config config;
  std::vector<std::string> problems;
  const bool ok = sbus::load_config_text(text, config_path, {}, &config, &problems);
  // Usable, or at least one reason why not.
  if (ok != problems.empty()) __builtin_trap();
  return 0;
}
