// /balloon and /balloon/statistics: configuration before start, resizing and statistics
// through the launcher after.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "api/controller.h"
#include "api/router.h"
#include "tests/testing/temp_file_for_api.h"

namespace microvm::api {
namespace {

using json = nlohmann::json;

class BalloonLauncher : public VmLauncher {
 public:
  Result<void> start(const VmConfig& config) override {
    started = config;
    return {};
  }
  void stop() override {}
  Result<void> set_balloon(uint64_t bytes) override {
    if (bytes > (256ull << 20)) return fail(EINVAL, "balloon size is larger than guest memory");
    target = bytes;
    return {};
  }
  Result<BalloonStats> balloon_stats() const override {
    BalloonStats s;
    s.target_bytes = target;
    s.actual_bytes = target / 2;
    s.total_memory = 200ull << 20;
    s.free_memory = 100ull << 20;
    return s;
  }
  std::optional<VmConfig> started;
  uint64_t target = 0;
};

class BalloonHandlersTest : public ::testing::Test {
 protected:
  HttpResponse call(const std::string& method, const std::string& path, const std::string& body = "") {
    return route(controller, HttpRequest{method, path, body});
  }
  void start() {
    ASSERT_EQ(call("PUT", "/boot-source", json{{"kernel_image_path", kernel.path()}}.dump()).status, 204);
    ASSERT_EQ(call("PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 256})").status, 204);
    ASSERT_EQ(call("PUT", "/actions", R"({"action_type": "InstanceStart"})").status, 204);
  }
  testing::ScratchFile kernel{"kernel"};
  BalloonLauncher launcher;
  Controller controller{VmConfig{}, InstanceInfo{"id", "1.0"}, launcher};
};

TEST_F(BalloonHandlersTest, PutConfiguresTheBalloonForStart) {
  EXPECT_EQ(call("GET", "/balloon").status, 400);  // none yet
  ASSERT_EQ(call("PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 256})").status, 204);
  auto r =
      call("PUT", "/balloon",
           R"({"amount_mib": 64, "deflate_on_oom": true, "stats_polling_interval_s": 5, "free_page_reporting": true})");
  ASSERT_EQ(r.status, 204) << r.body;
  auto g = json::parse(call("GET", "/balloon").body);
  EXPECT_EQ(g["amount_mib"], 64);
  EXPECT_EQ(g["deflate_on_oom"], true);
  EXPECT_EQ(g["stats_polling_interval_s"], 5);
  EXPECT_EQ(g["free_page_reporting"], true);
  ASSERT_EQ(call("PATCH", "/balloon", R"({"amount_mib": 32})").status, 204);  // before start: the config
  start();
  ASSERT_TRUE(launcher.started.has_value());
  ASSERT_TRUE(launcher.started->balloon.has_value());
  EXPECT_EQ(launcher.started->balloon->size_bytes, 32ull << 20);
  EXPECT_TRUE(launcher.started->balloon->deflate_on_oom);
  EXPECT_TRUE(launcher.started->balloon->free_page_reporting);
  EXPECT_EQ(launcher.started->balloon->stats_interval_s, 5u);
  // After start PUT is refused; PATCH goes to the running VM.
  EXPECT_EQ(call("PUT", "/balloon", R"({"amount_mib": 1, "deflate_on_oom": false})").status, 400);
  ASSERT_EQ(call("PATCH", "/balloon", R"({"amount_mib": 128})").status, 204);
  EXPECT_EQ(launcher.target, 128ull << 20);
  EXPECT_EQ(json::parse(call("GET", "/balloon").body)["amount_mib"], 128);
  EXPECT_EQ(call("PATCH", "/balloon", R"({"amount_mib": 4096})").status, 400);
  auto s = call("GET", "/balloon/statistics");
  ASSERT_EQ(s.status, 200) << s.body;
  auto j = json::parse(s.body);
  EXPECT_EQ(j["target_mib"], 128);
  EXPECT_EQ(j["actual_mib"], 64);
  EXPECT_EQ(j["target_pages"], 32768);
  EXPECT_EQ(j["total_memory"], 200ull << 20);
  EXPECT_EQ(j["free_memory"], 100ull << 20);
  EXPECT_FALSE(j.contains("swap_in"));  // never reported
  EXPECT_EQ(call("PATCH", "/balloon/statistics", R"({"stats_polling_interval_s": 5})").status, 204);
  EXPECT_EQ(call("PATCH", "/balloon/statistics", R"({"stats_polling_interval_s": 9})").status, 400);
}

TEST_F(BalloonHandlersTest, BadBodiesAreRefused) {
  ASSERT_EQ(call("PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 256})").status, 204);
  EXPECT_EQ(call("PUT", "/balloon", R"({"amount_mib": 1})").status, 400);         // deflate_on_oom missing
  EXPECT_EQ(call("PUT", "/balloon", R"({"deflate_on_oom": true})").status, 400);  // amount missing
  EXPECT_EQ(call("PUT", "/balloon", R"({"amount_mib": -1, "deflate_on_oom": true})").status, 400);
  EXPECT_EQ(call("PUT", "/balloon", R"({"amount_mib": 512, "deflate_on_oom": true})").status, 400);  // > memory
  EXPECT_EQ(call("PUT", "/balloon", R"({"amount_mib": 1, "deflate_on_oom": true, "x": 1})").status, 400);
  EXPECT_EQ(call("PUT", "/balloon", R"({"amount_mib": 1, "deflate_on_oom": true, "free_page_hinting": true})").status,
            400);
  EXPECT_EQ(call("PATCH", "/balloon", R"({"amount_mib": 1})").status, 400);  // no balloon configured
  EXPECT_EQ(call("GET", "/balloon/statistics").status, 400);
  EXPECT_EQ(call("DELETE", "/balloon").status, 405);
  ASSERT_EQ(call("PUT", "/balloon", R"({"amount_mib": 0, "deflate_on_oom": false})").status, 204);
  EXPECT_EQ(call("GET", "/balloon/statistics").status, 400);  // statistics not enabled
}

}  // namespace
}  // namespace microvm::api
