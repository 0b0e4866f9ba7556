// Plugins loaded from a private copy of their file (worker/plugin_image.hpp)
// and the version they state (SBUS_PLUGIN_VERSION), through the real loader
// and the builds of tests/plugins/version_plugin.cpp.
#include "worker/plugin_image.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>

#include "base/error.hpp"
#include "worker/plugin_host.hpp"
#include "worker/plugin_loader.hpp"

using Catch::Matchers::Contains;

namespace {

const std::string kTestPlugins = SBUS_BUILD_DIR "/test-plugins";
const std::string kMathPlugin = SBUS_BUILD_DIR "/plugins/math.so";

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A folder of the test's own, removed at the end.
struct Folder {
  Folder() : path((std::filesystem::temp_directory_path() / ("sbus-image-" + std::to_string(::getpid()))).string()) {
    std::filesystem::create_directories(path);
  }
  ~Folder() { std::filesystem::remove_all(path); }
  std::string path;
};

// What `version.which` answers, called through the C ABI as sbusd does.
std::string answer_of(sbus::LoadedService& loaded) {
  sbus_request request;
  request.id = "event-1";
  request.node = "node-1";
  request.category = "version";
  request.service = "which";
  request.params = "[]";
  request.is_call = true;
  const std::optional<std::string> failure = loaded.call(request);
  return failure ? "failed: " + *failure : request.body;
}

}  // namespace

TEST_CASE(
    "a plugin states its version with SBUS_PLUGIN_VERSION (in C its descriptor's), and one that does not states none",
    "[plugin_loader][hot_upgrade]") {
  sbus::PluginLoader loader;
  CHECK(loader.version(kTestPlugins + "/version-a.so") == "1.0.a");
  CHECK(loader.version(kMathPlugin).empty());
  // In C: the descriptor's `version`.
  CHECK(loader.version(kTestPlugins + "/misbehaving_plugin.so") == "1.0");
  // On one line, and 128 bytes at most.
  // (A loader of its own: one loader takes one plugin of each name.)
  CHECK(sbus::PluginLoader().version(kTestPlugins + "/version-odd.so") == "6.0 odd " + std::string(120, 'x'));
  sbus::LoadedService which = loader.create(kTestPlugins + "/version-a.so", "which", sbus::Kind::kCall);
  CHECK(which.version() == "1.0.a");
  CHECK(answer_of(which) == "\"1.0.a\"");
}

TEST_CASE("a loaded plugin keeps running its own code when its file is written over in place (cp)",
          "[plugin_loader][hot_upgrade]") {
  Folder folder;
  const std::string plugin = folder.path + "/version.so";
  std::filesystem::copy_file(kTestPlugins + "/version-a.so", plugin);
  sbus::PluginLoader loader;
  sbus::LoadedService which = loader.create(plugin, "which", sbus::Kind::kCall);
  REQUIRE(answer_of(which) == "\"1.0.a\"");
  // What `cp version-b.so version.so` does: truncate, then write.
  std::ofstream(plugin, std::ios::binary | std::ios::trunc) << bytes_of(kTestPlugins + "/version-b.so");
  CHECK(answer_of(which) == "\"1.0.a\"");
  // The file itself is not mapped: only the private copy is, named after it.
  std::istringstream maps(bytes_of("/proc/self/maps"));
  int of_file = 0;
  int of_copy = 0;
  for (std::string line; std::getline(maps, line);) {
    if (line.find(plugin) == std::string::npos) continue;
    ++(line.find("/memfd:sbus-copy:" + plugin + " (deleted)") != std::string::npos ? of_copy : of_file);
  }
  CHECK(of_file == 0);
  CHECK(of_copy > 0);
  // A new loader (a new worker) reads the new bytes.
  sbus::PluginLoader next;
  sbus::LoadedService upgraded = next.create(plugin, "which", sbus::Kind::kCall);
  CHECK(answer_of(upgraded) == "\"2.0.b\"");
  CHECK(answer_of(which) == "\"1.0.a\"");
}

TEST_CASE("a plugin that needs a symbol nobody defines is refused, naming its file rather than its copy",
          "[plugin_loader][hot_upgrade]") {
  const std::string plugin = kTestPlugins + "/version-missing.so";
  std::string error;
  try {
    sbus::load_plugin_image(plugin, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const sbus::PluginError& e) {
    error = e.what();
  }
  CHECK_THAT(error, Contains("plugin " + plugin + ": cannot load: "));
  CHECK_THAT(error, Contains("undefined symbol: sbus_test_function_nobody_defines"));
  CHECK_THAT(error, !Contains("/proc/self/fd"));
  CHECK_THROWS_WITH(sbus::load_plugin_image(plugin + ".nowhere", boost::dll::load_mode::rtld_now),
                    "plugin " + plugin + ".nowhere: no such file");
}

TEST_CASE("a plugin whose library is found only through $ORIGIN is loaded from its file, and says so",
          "[plugin_loader][hot_upgrade]") {
  const std::string plugin = kTestPlugins + "/origin/origin_plugin.so";
  std::string from_file;
  const auto library =
      sbus::load_plugin_image(plugin, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, &from_file);
  REQUIRE(library->is_loaded());
  CHECK_THAT(from_file, Contains("liborigin_dep.so"));
  CHECK_THAT(from_file, Contains("cannot open shared object file"));
  CHECK(library->location().string() == plugin);
  // A plugin whose copy loads leaves it alone.
  std::string untouched = "untouched";
  sbus::load_plugin_image(kTestPlugins + "/version-a.so", boost::dll::load_mode::rtld_now, &untouched);
  CHECK(untouched == "untouched");
}
