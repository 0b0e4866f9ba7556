// The layers of docs/architecture.md, checked on the source: each folder of
// the product includes only from the folders below it. A quoted include that
// reaches a folder its layer may not use fails the test with the file, the
// line and the rule it breaks.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

// Folder under daemon/ (or "sdk" for plugin-sdk/include/sbus) -> the folders
// its quoted includes may name. A folder may always include itself.
const std::map<std::string, std::set<std::string>> kMayInclude = {
    {"base", {"sbus"}},
    {"config", {"base", "sbus"}},
    {"amqp", {"base"}},
    {"protocol", {"base", "amqp"}},
    {"tls", {"base", "amqp"}},
    {"xml", {"protocol"}},
    {"journal", {}},
    {"metrics", {"base"}},
    {"supervisor", {"base", "config", "sbus"}},
    {"worker", {"base", "config", "amqp", "protocol", "sbus"}},
    {"client", {"base", "config", "amqp", "protocol", "sbus"}},
    {"client/cli", {"base", "config", "amqp", "client", "sbus"}},
    {"sdk", {"sbus"}},
};

// The layer a product file belongs to: the longest key of kMayInclude that
// its folder under daemon/ starts with.
std::string layer_of(const fs::path& relative_to_daemon) {
  const std::string path = relative_to_daemon.generic_string();
  std::string best;
  for (const auto& [layer, allowed] : kMayInclude) {
    if (path.rfind(layer + "/", 0) == 0 && layer.size() > best.size()) best = layer;
  }
  return best;
}

struct Include {
  fs::path file;
  int line;
  std::string target;  // "amqp/amqp_connection.hpp", "sbus/plugin.hpp"
};

// Every #include "..." and #include <sbus/...> of the source files under root.
std::vector<Include> includes_under(const fs::path& root) {
  static const std::regex include_line(R"(^\s*#\s*include\s*["<]([^">]+)[">])");
  std::vector<Include> found;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    const auto ext = entry.path().extension();
    if (!entry.is_regular_file() || (ext != ".cpp" && ext != ".hpp" && ext != ".h" && ext != ".in")) continue;
    std::ifstream in(entry.path());
    std::string text;
    for (int line = 1; std::getline(in, text); ++line) {
      std::smatch match;
      if (!std::regex_search(text, match, include_line)) continue;
      const std::string target = match[1];
      // Angle includes other than the SDK's are system and library headers.
      if (text.find('<') != std::string::npos && target.rfind("sbus/", 0) != 0) continue;
      found.push_back({entry.path(), line, target});
    }
  }
  return found;
}

// The folder an include names: "amqp", "client/cli", "sbus"; empty for a
// header in the including file's own folder ("job.hpp").
std::string folder_of(const std::string& target) {
  const auto slash = target.find('/');
  if (slash == std::string::npos) return {};
  const std::string first = target.substr(0, slash);
  if (first == "client" && target.rfind("client/cli/", 0) == 0) return "client/cli";
  return first;
}

}  // namespace

TEST_CASE("each folder of the product includes only from the layers below it", "[layers]") {
  const fs::path source(SBUS_SOURCE_DIR);
  std::vector<std::string> broken;
  std::size_t checked = 0;

  for (const auto& include : includes_under(source / "daemon")) {
    const std::string layer = layer_of(fs::relative(include.file, source / "daemon"));
    INFO(include.file);
    REQUIRE_FALSE(layer.empty());  // a new folder needs its row in kMayInclude and docs/architecture.md
    const std::string target = folder_of(include.target);
    ++checked;
    if (target.empty() || target == layer) continue;
    if (!kMayInclude.at(layer).count(target)) {
      broken.push_back(fs::relative(include.file, source).string() + ":" + std::to_string(include.line) + ": daemon/" +
                       layer + " may not include \"" + include.target + "\"");
    }
  }

  for (const auto& include : includes_under(source / "plugin-sdk/include")) {
    ++checked;
    if (folder_of(include.target) != "sbus") {
      broken.push_back(fs::relative(include.file, source).string() + ":" + std::to_string(include.line) +
                       ": the SDK's public headers include nothing of the daemon, not \"" + include.target + "\"");
    }
  }

  for (const auto& include : includes_under(source / "plugins")) {
    ++checked;
    const std::string target = folder_of(include.target);
    if (!target.empty() && target != "sbus") {
      broken.push_back(fs::relative(include.file, source).string() + ":" + std::to_string(include.line) +
                       ": a plugin includes only the SDK, not \"" + include.target + "\"");
    }
  }

  CHECK(checked > 100);  // the walk found the product
  std::string report;
  for (const auto& line : broken) report += line + "\n";
  INFO(report);
  CHECK(broken.empty());
}

TEST_CASE("the layer rule catches an include that reaches up", "[layers]") {
  // The check itself, on names: the supervisor reaching into the worker or
  // the AMQP stack is what the rule exists to stop.
  CHECK(layer_of("supervisor/supervisor.cpp") == "supervisor");
  CHECK(layer_of("client/cli/sbus_main.cpp") == "client/cli");
  CHECK(layer_of("client/sender.cpp") == "client");
  CHECK_FALSE(kMayInclude.at("supervisor").count(folder_of("worker/worker.hpp")));
  CHECK_FALSE(kMayInclude.at("supervisor").count(folder_of("amqp/amqp_connection.hpp")));
  CHECK_FALSE(kMayInclude.at("base").count(folder_of("config/config.hpp")));
  CHECK(folder_of("job.hpp").empty());
}
