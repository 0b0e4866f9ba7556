// Loading sbus-tls.so, the module that holds everything of sbus that needs
// libssl and libcrypto. The handshake itself is tested against real brokers
// in tests/tls.
#include "amqp/tls_socket.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>
#include <vector>

namespace {

const std::string kModule = SBUS_BUILD_DIR "/libexec/sbus/sbus-tls.so";

}  // namespace

TEST_CASE("load_tls_module takes the first candidate that is an sbus TLS module and says why each other is not",
          "[tls][unit]") {
  const std::string missing = SBUS_BUILD_DIR "/no-such-folder/sbus-tls.so";
  const std::string not_elf = SBUS_SOURCE_DIR "/README.md";
  const std::string other_module = SBUS_BUILD_DIR "/test-plugins/bad_abi_plugin.so";
  // A path through a file, not a folder: stat fails with ENOTDIR.
  const std::string through_file = SBUS_SOURCE_DIR "/README.md/sbus-tls.so";

  SECTION("the real module after three that are not") {
    std::string error;
    CHECK(sbus::load_tls_module({missing, not_elf, other_module, kModule}, &error) != nullptr);
    CHECK(error.empty());
  }
  SECTION("none of them: each path is named with its reason") {
    std::string error;
    CHECK(sbus::load_tls_module({missing, through_file, not_elf, other_module}, &error) == nullptr);
    INFO(error);
    CHECK(error.rfind("the TLS module sbus-tls.so cannot be loaded (", 0) == 0);
    CHECK(error.find(missing + ": no such file") != std::string::npos);
    CHECK(error.find(through_file + ": Not a directory") != std::string::npos);
    CHECK(error.find(not_elf + ": ") != std::string::npos);
    CHECK(error.find(other_module + ": not an sbus TLS module (no sbus_tls_attach)") != std::string::npos);
  }
}

TEST_CASE("sbus-tls.so refuses a caller of another sbus version before it touches the connection", "[tls][unit]") {
  std::string error;
  const sbus::TlsAttachFunction attach = sbus::load_tls_module({kModule}, &error);
  REQUIRE(attach != nullptr);
  const std::string host = "localhost";
  const sbus::TlsOptions options;
  CHECK(attach("0.0.0-other", nullptr, &host, &options, &error) == nullptr);
  CHECK(error == "the TLS module is of sbus " SBUS_VERSION ", this program of sbus 0.0.0-other");
}

TEST_CASE("the TLS module is looked for beside this program and in ../libexec/sbus, then where it is installed",
          "[tls][unit]") {
  ::unsetenv("SBUS_TLS_MODULE");
  const std::vector<std::string> candidates = sbus::tls_module_candidates();
  REQUIRE(candidates.size() >= 2);
  // The unit tests run from build/bin: the module is in build/libexec/sbus.
  CHECK(candidates[0] == SBUS_BUILD_DIR "/bin/sbus-tls.so");
  CHECK(candidates[1] == kModule);
  CHECK(candidates.back().find("/libexec/sbus/sbus-tls.so") != std::string::npos);
}
