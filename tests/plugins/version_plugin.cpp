// One plugin built in several variants from this file (tests/CMakeLists.txt),
// for the hot upgrade tests: `version.which` answers the build's name, and
// the plugin states it as its version. SBUS_TEST_VERSION names the build;
// SBUS_TEST_START_THROWS makes a build whose start() throws, and
// SBUS_TEST_MISSING_SYMBOL one that needs a function no library has (the
// loader refuses it: undefined symbol), and SBUS_TEST_START_ONCE one whose
// start() succeeds once per marker file (`options: {marker: PATH}`): it
// creates the file, and throws when the file is there already, so that a
// reload's check passes and the worker started after it fails;
// SBUS_TEST_ODD_VERSION one whose stated version has control characters and
// is longer than sbusd shows. Every variant
// is the plugin `version` with the service `which`, so any can be copied
// over another. Called with params [MS, PATH], a build creates PATH and then
// answers after MS milliseconds: a call in progress while its worker drains;
// with [MS, PATH, RELEASE] it answers sooner once the file RELEASE exists.
#ifdef SBUS_TEST_ODD_VERSION
// A version sbusd shows otherwise: on two lines, and longer than 128 bytes.
#define SBUS_PLUGIN_VERSION "6.0\nodd\t" SBUS_TEST_ODD_VERSION
#else
#define SBUS_PLUGIN_VERSION SBUS_TEST_VERSION
#endif
#include <sbus/plugin.hpp>

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <thread>

#ifndef SBUS_TEST_VERSION
#error "build with -DSBUS_TEST_VERSION=\"name\""
#endif

#ifdef SBUS_TEST_MISSING_SYMBOL
extern "C" const char* sbus_test_function_nobody_defines();
#endif

namespace {

class WhichService : public sbus::Service {
 public:
  void start(const sbus::ServiceContext& context) override {
#ifdef SBUS_TEST_START_THROWS
    throw std::runtime_error("build " SBUS_TEST_VERSION " refuses to start");
#endif
#ifdef SBUS_TEST_START_ONCE
    const auto marker = context.options.find("marker");
    if (marker == context.options.end()) throw std::runtime_error("options: marker: missing");
    if (std::ifstream(marker->second)) throw std::runtime_error("build " SBUS_TEST_VERSION " started once already");
    std::ofstream(marker->second) << "started\n";
#else
    (void)context;
#endif
  }
  void on_call(const sbus::Request& request, sbus::Response& response) override {
    const rapidjson::Value& params = request.params();
    if (params.IsArray() && params.Size() >= 2 && params[0].IsInt() && params[1].IsString()) {
      std::ofstream(params[1].GetString()) << "running\n";
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(params[0].GetInt());
      const char* release = params.Size() == 3 && params[2].IsString() ? params[2].GetString() : nullptr;
      while (std::chrono::steady_clock::now() < until && !(release != nullptr && std::ifstream(release))) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
#ifdef SBUS_TEST_MISSING_SYMBOL
    response.send(sbus_test_function_nobody_defines());
#else
    response.send(SBUS_TEST_VERSION);
#endif
  }
};

}  // namespace

SBUS_PLUGIN("version", SBUS_SERVICE("which", WhichService, sbus::Kind::kCall))
