// The unit's sandbox against what sbusd really does: systemd/sbusd.service
// allows the system calls of @system-service but for @privileged and
// @resources, and the address families AF_UNIX, AF_INET and AF_INET6. This
// machine runs no systemd, so the test cannot start sbusd in the unit;
// instead it traces every process of a live sbusd (supervisor, worker, an
// isolated service's process, the metrics server) with strace while it
// answers calls, reloads and stops, and holds each system call it made to
// the unit's filter as `systemd-analyze syscall-filter` expands it. A
// call outside it would be refused with EPERM under systemd.
#include <signal.h>
#include <sys/types.h>

#include <catch2/catch.hpp>

#include <optional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "harness.hpp"

namespace {

using sbus_test::SbusdOptions;
using sbus_test::SbusdProcess;
using namespace std::chrono_literals;

// Every group `systemd-analyze syscall-filter` knows: its members, names
// of calls or of other groups.
std::map<std::string, std::vector<std::string>> filter_groups() {
  const sbus_test::ProcessResult listed = sbus_test::run_program("/usr/bin/systemd-analyze", {"syscall-filter"});
  REQUIRE(listed.exit_code == 0);
  std::map<std::string, std::vector<std::string>> groups;
  std::istringstream lines(listed.out);
  std::string line;
  std::string group;
  while (std::getline(lines, line)) {
    if (line.rfind("@", 0) == 0) {
      group = line;
      continue;
    }
    const std::size_t start = line.find_first_not_of(' ');
    if (group.empty() || start == std::string::npos || line[start] == '#') continue;
    groups[group].push_back(line.substr(start));
  }
  return groups;
}

void expand(const std::map<std::string, std::vector<std::string>>& groups, const std::string& name,
            std::set<std::string>* calls) {
  if (name.rfind("@", 0) != 0) {
    calls->insert(name);
    return;
  }
  const auto found = groups.find(name);
  REQUIRE(found != groups.end());
  for (const std::string& member : found->second) expand(groups, member, calls);
}

// The names of the system calls in strace's output, and the address
// families of the sockets made.
void traced(const std::string& text, std::set<std::string>* calls, std::set<std::string>* families) {
  static const std::regex call(R"(^\d+\s+([a-z_0-9]+)\()");
  static const std::regex family(R"(socket\((AF_[A-Z0-9]+))");
  std::istringstream lines(text);
  std::string line;
  std::smatch match;
  while (std::getline(lines, line)) {
    if (std::regex_search(line, match, call)) calls->insert(match[1]);
    if (std::regex_search(line, match, family)) families->insert(match[1]);
  }
}

// The first child of `pid` (strace's: sbusd's supervisor); -1 if none.
pid_t first_child(pid_t pid) {
  std::istringstream children(
      sbus_test::read_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children"));
  pid_t child = -1;
  children >> child;
  return child;
}

}  // namespace

TEST_CASE("every system call and socket family of a live sbusd is one the unit's sandbox allows", "[sandbox][slow]") {
  sbus_test::TempDir dir;
  const std::string trace = dir.file("trace");
  SbusdOptions options;
  options.command_prefix = {"/usr/bin/strace", "-f", "-qq", "-o", trace};
  options.extra_yaml = "metrics_listen: " + dir.file("metrics.sock") + "\n";
  options.service_yaml["test.echo"] = "    isolate: true\n";
  SbusdProcess sbusd(options);
  const pid_t supervisor = first_child(sbusd.pid());  // sbusd.pid() is strace's
  REQUIRE(supervisor > 0);

  CHECK(sbus_test::run_cli(sbus_test::concat({"call", sbusd.address("math.add"), "[1,2]"}, sbusd.cli_args())).out ==
        "3\n");
  CHECK(sbus_test::run_cli(sbus_test::concat({"call", sbusd.address("test.echo"), "[\"x\"]"}, sbusd.cli_args()))
            .exit_code == 0);
  CHECK(sbus_test::run_cli(sbus_test::concat({"send", sbusd.address("test.record"), "[1]"}, sbusd.cli_args()))
            .exit_code == 0);
  ::kill(supervisor, SIGHUP);
  std::this_thread::sleep_for(1s);
  CHECK(sbus_test::run_cli(sbus_test::concat({"call", sbusd.address("math.add"), "[2,2]"}, sbusd.cli_args())).out ==
        "4\n");
  ::kill(supervisor, SIGTERM);
  CHECK(sbusd.wait_exit(60s) == std::optional<int>(0));

  const auto groups = filter_groups();
  std::set<std::string> allowed;
  std::set<std::string> denied;
  expand(groups, "@system-service", &allowed);
  expand(groups, "@privileged", &denied);
  expand(groups, "@resources", &denied);
  std::set<std::string> calls;
  std::set<std::string> families;
  traced(sbus_test::read_file(trace), &calls, &families);
  REQUIRE(calls.count("execve") == 1);
  REQUIRE(calls.size() > 20);  // the trace really followed sbusd

  std::string outside;
  for (const std::string& name : calls) {
    // strace's own start: the execve into sbusd is the unit's ExecStart.
    if (name == "execve") continue;
    if (allowed.count(name) == 0 || denied.count(name) != 0) outside += " " + name;
  }
  INFO("system calls outside @system-service ~@privileged @resources:" << outside);
  CHECK(outside.empty());
  for (const std::string& name : families) {
    INFO("socket family " << name);
    CHECK((name == "AF_UNIX" || name == "AF_INET" || name == "AF_INET6"));
  }
}
