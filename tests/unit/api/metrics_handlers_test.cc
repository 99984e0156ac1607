// GET|PUT /metrics, FlushMetrics, GET /events and the api_server counters, through the
// router with a launcher that reports fixed VM counters.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "api/event_hub.h"
#include "api/router.h"
#include "tests/testing/temp_file_for_api.h"

namespace microvm::api {
namespace {

using nlohmann::json;

class CountersLauncher : public VmLauncher {
 public:
  Result<void> start(const VmConfig&) override { return {}; }
  void stop() override {}
  std::vector<MetricGroup> metrics() override { return groups; }
  std::vector<MetricGroup> groups;
};

class MetricsHandlersTest : public ::testing::Test {
 protected:
  HttpResponse call(const std::string& method, const std::string& path, const std::string& body = "") {
    return route(controller, HttpRequest{method, path, body});
  }
  static std::string fault_of(const HttpResponse& r) {
    auto j = json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("fault_message") ? j["fault_message"].get<std::string>() : r.body;
  }
  std::vector<json> lines_of(const std::string& path) {
    std::vector<json> out;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line, nullptr, false));
    return out;
  }
  void start() {
    ASSERT_EQ(call("PUT", "/boot-source", json{{"kernel_image_path", kernel.path()}}.dump()).status, 204);
    ASSERT_EQ(call("PUT", "/actions", R"({"action_type":"InstanceStart"})").status, 204);
  }

  testing::ScratchFile kernel{"kernel"};
  testing::ScratchFile marker{"marker"};
  std::string metrics_path = marker.path() + ".metrics";
  CountersLauncher launcher;
  Controller controller{VmConfig{}, InstanceInfo{"test-id", "9.9.9"}, launcher};
  void TearDown() override { ::unlink(metrics_path.c_str()); }
};

TEST_F(MetricsHandlersTest, GetMetricsCountsApiRequestsByMethodAndOutcome) {
  EXPECT_EQ(call("GET", "/nope").status, 404);
  EXPECT_EQ(call("PATCH", "/machine-config", "{").status, 400);
  auto r = call("GET", "/metrics");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = json::parse(r.body);
  EXPECT_GT(j["utc_timestamp_ms"].get<uint64_t>(), 1'600'000'000'000u);
  // This GET itself was counted before the document was built; its 2xx was not yet.
  EXPECT_EQ(j["api_server"]["get_requests"], 2);
  EXPECT_EQ(j["api_server"]["patch_requests"], 1);
  EXPECT_EQ(j["api_server"]["responses_4xx"], 2);
  EXPECT_EQ(j["api_server"]["responses_2xx"], 0);
  EXPECT_FALSE(j.contains("vcpu"));  // no VM yet
  // The alias answers the same document.
  EXPECT_EQ(json::parse(call("GET", "/metrics/now").body)["api_server"]["responses_2xx"], 1);
  EXPECT_EQ(call("DELETE", "/metrics").status, 405);
}

TEST_F(MetricsHandlersTest, VmCounterGroupsBecomeTopLevelObjects) {
  launcher.groups = {{"vcpu", {{"exit_io_out", 7}, {"exit_mmio_read", 3}}},
                     {"block_rootfs", {{"read_ops", 5}, {"read_bytes", 2560}}}};
  auto j = json::parse(call("GET", "/metrics").body);
  EXPECT_EQ(j["vcpu"]["exit_io_out"], 7);
  EXPECT_EQ(j["vcpu"]["exit_mmio_read"], 3);
  EXPECT_EQ(j["block_rootfs"]["read_bytes"], 2560);
  EXPECT_TRUE(j.contains("api_server"));
}

TEST_F(MetricsHandlersTest, PutMetricsThenEachFlushAppendsOneJsonLine) {
  auto r = call("PUT", "/actions", R"({"action_type":"FlushMetrics"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_of(r).find("not configured"), std::string::npos) << fault_of(r);
  EXPECT_EQ(call("PUT", "/metrics", R"({})").status, 400);
  EXPECT_EQ(call("PUT", "/metrics", R"({"metrics_path":"x","extra":1})").status, 400);
  ASSERT_EQ(call("PUT", "/metrics", json{{"metrics_path", metrics_path}}.dump()).status, 204);
  struct stat st {};
  ASSERT_EQ(::stat(metrics_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  r = call("PUT", "/metrics", json{{"metrics_path", metrics_path}}.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_of(r).find("already"), std::string::npos) << fault_of(r);

  launcher.groups = {{"net_eth0", {{"tx_frames", 1}}}};
  EXPECT_EQ(call("PUT", "/actions", R"({"action_type":"FlushMetrics"})").status, 204);
  launcher.groups = {{"net_eth0", {{"tx_frames", 9}}}};
  EXPECT_EQ(call("PUT", "/actions", R"({"action_type":"FlushMetrics"})").status, 204);
  auto lines = lines_of(metrics_path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["net_eth0"]["tx_frames"], 1);
  EXPECT_EQ(lines[1]["net_eth0"]["tx_frames"], 9);
  EXPECT_EQ(lines[1]["api_server"]["metrics_flushes"], 1);  // the first flush, counted before the second
  EXPECT_LE(lines[0]["utc_timestamp_ms"].get<uint64_t>(), lines[1]["utc_timestamp_ms"].get<uint64_t>());
}

TEST_F(MetricsHandlersTest, MetricsPathIsRefusedAfterStartAndWhenNotAFile) {
  auto r = call("PUT", "/metrics", json{{"metrics_path", marker.path() + "-missing-dir/m"}}.dump());
  EXPECT_EQ(r.status, 400);
  r = call("PUT", "/metrics", json{{"metrics_path", "/dev/null"}}.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_of(r).find("neither a regular file nor a named pipe"), std::string::npos) << fault_of(r);
  start();
  r = call("PUT", "/metrics", json{{"metrics_path", metrics_path}}.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_of(r).find("after the microVM started"), std::string::npos) << fault_of(r);
  EXPECT_FALSE(controller.metrics_configured());
}

TEST_F(MetricsHandlersTest, EventsNeedAHubAndAnswerWithAStream) {
  auto r = call("GET", "/events");
  EXPECT_EQ(r.status, 400);
  EXPECT_FALSE(r.event_stream);
  auto hub = EventHub::create();
  ASSERT_TRUE(hub);
  controller.set_event_hub(hub->get());
  r = call("GET", "/events");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.event_stream);
  EXPECT_EQ(call("PUT", "/events", "{}").status, 405);
}

TEST(EventHub, QueueIsBoundedOldestDroppedAndLinesAreJson) {
  auto hub = EventHub::create();
  ASSERT_TRUE(hub);
  for (size_t i = 0; i < EventHub::kMaxQueued + 5; ++i) (*hub)->publish(VmEvent{"paused", std::to_string(i)});
  EXPECT_EQ((*hub)->dropped(), 5u);
  auto lines = (*hub)->take_lines();
  ASSERT_EQ(lines.size(), EventHub::kMaxQueued);
  auto first = json::parse(lines.front());
  EXPECT_EQ(first["event"], "paused");
  EXPECT_EQ(first["detail"], "5");
  EXPECT_TRUE(lines.back().ends_with("}\n"));
  EXPECT_TRUE((*hub)->take_lines().empty());
  (*hub)->publish(VmEvent{"started", ""});
  auto started = json::parse((*hub)->take_lines().at(0));
  EXPECT_FALSE(started.contains("detail"));
}

}  // namespace
}  // namespace microvm::api
