// The metrics of base/metrics_catalog.hpp against their reference in
// docs/metrics.md, the snapshot's trip through the pipe, and the health
// lines the supervisor makes of its worker records.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "base/metrics_catalog.hpp"
#include "base/metrics_entry.hpp"
#include "supervisor/metrics_render.hpp"

namespace {

std::string trim(const std::string& text) {
  const std::size_t first = text.find_first_not_of(' ');
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(' ') - first + 1);
}

// The rows of docs/metrics.md's table: metric, type, labels, meaning.
std::vector<std::vector<std::string>> documented_metrics() {
  std::ifstream in(std::filesystem::path(SBUS_SOURCE_DIR) / "docs/metrics.md");
  REQUIRE(in);
  std::vector<std::vector<std::string>> rows;
  bool in_table = false;
  for (std::string line; std::getline(in, line);) {
    if (line == "| metric | type | labels | meaning |") {
      in_table = true;
      std::getline(in, line);
      continue;
    }
    if (!in_table) continue;
    if (line.rfind("| ", 0) != 0) break;
    std::vector<std::string> cells;
    std::istringstream row(line.substr(1));
    for (std::string cell; std::getline(row, cell, '|');) cells.push_back(trim(cell));
    REQUIRE(cells.size() == 4);
    rows.push_back(cells);
  }
  return rows;
}

std::string labels_cell(const sbus::MetricFamily& family) {
  std::string cell = "`node`";
  std::istringstream names{std::string(family.labels)};
  for (std::string name; std::getline(names, name, ',');) cell += ", `" + trim(name) + "`";
  return cell;
}

}  // namespace

TEST_CASE("docs/metrics.md lists every metric sbusd serves, with its type, labels and meaning", "[metrics]") {
  const std::vector<std::vector<std::string>> rows = documented_metrics();
  const auto families = sbus::metric_families();
  REQUIRE(rows.size() == families.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const sbus::MetricFamily& family = families[i];
    INFO(family.name);
    CHECK(rows[i][0] == "`" + std::string(family.name) + "`");
    CHECK(rows[i][1] == family.type);
    CHECK(rows[i][2] == labels_cell(family));
    CHECK(rows[i][3] == family.help);
  }
}

TEST_CASE("metric names follow Prometheus conventions", "[metrics]") {
  for (const sbus::MetricFamily& family : sbus::metric_families()) {
    INFO(family.name);
    CHECK(family.name.starts_with("sbus_"));
    CHECK(family.name.ends_with("_total") == (family.type == "counter"));
    CHECK(family.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string_view::npos);
    CHECK(sbus::family_of_sample(family.name) == &family);
  }
  CHECK(sbus::family_of_sample("sbus_service_duration_seconds_bucket")->name == "sbus_service_duration_seconds");
  CHECK(sbus::family_of_sample("sbus_broker_connected_bucket") == nullptr);
  CHECK(sbus::family_of_sample("sbus_nothing") == nullptr);
}

TEST_CASE("snapshots come out of the pipe whole, however the bytes are cut", "[metrics]") {
  sbus::MetricsSnapshot first{200, "ok\n", 200, "ready\n", "sbus_uptime_seconds{node=\"N\"} 1\n"};
  sbus::MetricsSnapshot second{503, "unhealthy\n", 503, "", std::string(100000, 'x')};
  const std::string bytes = sbus::encode_snapshot(first) + sbus::encode_snapshot(second);
  sbus::SnapshotReader reader;
  std::vector<sbus::MetricsSnapshot> read;
  for (std::size_t at = 0; at < bytes.size(); at += 7) {
    reader.add(bytes.data() + at, std::min<std::size_t>(7, bytes.size() - at));
    while (auto snapshot = reader.next()) read.push_back(*snapshot);
  }
  REQUIRE(read.size() == 2);
  CHECK(read[0].health_status == 200);
  CHECK(read[0].metrics == first.metrics);
  CHECK(read[1].health == "unhealthy\n");
  CHECK(read[1].ready.empty());
  CHECK(read[1].metrics == second.metrics);
}

TEST_CASE("/healthz is 200 only when every broker's worker is connected and every service started", "[metrics]") {
  sbus::Config config;
  config.node = "N1";
  config.brokers = {"amqp://a/", "amqp://b/"};
  for (const std::string& text : config.brokers) {
    sbus::BrokerUri uri;
    std::string error;
    REQUIRE(sbus::parse_broker_uri(text, &uri, &error));
    config.broker_uris.push_back(uri);
  }
  auto shared = std::make_shared<const sbus::Config>(config);
  std::deque<sbus::WorkerRecord> workers(2);
  for (std::size_t i = 0; i < 2; ++i) {
    workers[i].id = i + 1;
    workers[i].broker = config.brokers[i];
    workers[i].broker_index = i;
    workers[i].config = shared;
    workers[i].state = sbus::WorkerState::kRunning;
    workers[i].connected = true;
  }
  workers[0].metrics = "sbus_service_handled_total{service=\"math.add\",kind=\"rpc\"} 7\n";
  const auto render = [&](bool stopping = false) {
    return sbus::render_metrics({config, workers, std::chrono::seconds(3), -1, stopping});
  };

  sbus::MetricsSnapshot all = render();
  CHECK(all.health_status == 200);
  CHECK(all.health == "ok: 2/2 brokers connected\n");
  CHECK(all.ready_status == 200);
  CHECK(
      all.metrics.find("sbus_service_handled_total{node=\"N1\",broker=\"amqp://guest@a:5672/%2f\",service=\"math.add\","
                       "kind=\"rpc\"} 7\n") != std::string::npos);

  SECTION("a worker that lost its broker: 503 naming it, still ready, its last values kept") {
    workers[0].connected = false;
    const sbus::MetricsSnapshot one = render();
    CHECK(one.health_status == 503);
    CHECK(one.health == "unhealthy: 1/2 brokers connected; amqp://guest@a:5672/%2f: worker not connected\n");
    CHECK(one.ready_status == 200);
    CHECK(one.ready == "ready: 1/2 brokers connected\n");
    CHECK(one.metrics.find("sbus_broker_connected{node=\"N1\",broker=\"amqp://guest@a:5672/%2f\"} 0\n") !=
          std::string::npos);
    CHECK(one.metrics.find("service=\"math.add\",kind=\"rpc\"} 7\n") != std::string::npos);
  }
  SECTION("no worker serving: 503 for both") {
    workers[0].state = sbus::WorkerState::kWaitingRestart;
    workers[1].state = sbus::WorkerState::kFailed;
    const sbus::MetricsSnapshot none = render();
    CHECK(
        none.health ==
        "unhealthy: 0/2 brokers connected; amqp://guest@a:5672/%2f: worker restarting; amqp://guest@b:5672/%2f: worker "
        "failed, not restarted until the next reload\n");
    CHECK(none.ready_status == 503);
    CHECK(none.ready ==
          "not ready: 0/2 brokers connected; amqp://guest@a:5672/%2f: worker restarting; amqp://guest@b:5672/%2f: "
          "worker failed, not restarted until the next reload\n");
  }
  SECTION("a service that could not start") {
    workers[1].unavailable = {"math.add: cannot load math.so"};
    const sbus::MetricsSnapshot down = render();
    CHECK(down.health_status == 503);
    CHECK(down.health == "unhealthy: 2/2 brokers connected; service math.add: cannot load math.so\n");
    CHECK(down.metrics.find(
              "sbus_service_unavailable{node=\"N1\",broker=\"amqp://guest@b:5672/%2f\",service=\"math.add\"} 1") !=
          std::string::npos);
  }
  SECTION("stopping") {
    const sbus::MetricsSnapshot stopping = render(true);
    CHECK(stopping.health_status == 503);
    CHECK(stopping.ready_status == 503);
    CHECK(stopping.ready == "not ready: stopping, 2/2 brokers connected\n");
  }
}
