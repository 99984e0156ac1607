// Firecracker's balloon endpoints over curl against a real `microvm run --api-sock`: PUT before
// start creates the device, GET reads it back, PATCH resizes the running VM's balloon, and the
// statistics endpoint answers with Firecracker's fields. The guest (idle firmware) has no
// balloon driver, so the target moves and the actual size stays 0.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/integration/support/api_process.h"

namespace microvm::testing {
namespace {

using json = nlohmann::json;

TEST(ApiBalloonTest, PutGetPatchAndStatisticsOverCurl) {
  REQUIRE_KVM();
  ApiVm vm;
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  ASSERT_EQ(vm.curl("PUT", "/boot-source", R"({"kernel_image_path":")" + firmware_path("idle") + "\"}").status, 204);
  ASSERT_EQ(vm.curl("PUT", "/machine-config", R"({"vcpu_count":1,"mem_size_mib":64})").status, 204);
  CurlReply none = vm.curl("GET", "/balloon");
  EXPECT_EQ(none.status, 400) << none.body;
  EXPECT_EQ(fault_message(none.body), "no balloon device is configured");
  CurlReply big = vm.curl("PUT", "/balloon", R"({"amount_mib":128,"deflate_on_oom":true})");
  EXPECT_EQ(big.status, 400) << big.body;
  EXPECT_EQ(fault_message(big.body), "amount_mib is larger than the guest memory");
  CurlReply hinting = vm.curl("PUT", "/balloon", R"({"amount_mib":0,"deflate_on_oom":true,"free_page_hinting":true})");
  EXPECT_EQ(hinting.status, 400) << hinting.body;
  ASSERT_EQ(vm.curl("PUT", "/balloon", R"({"amount_mib":4,"deflate_on_oom":true,"stats_polling_interval_s":1})").status,
            204);
  json b = json::parse(vm.curl("GET", "/balloon").body, nullptr, false);
  EXPECT_EQ(b["amount_mib"], 4) << b.dump();
  EXPECT_EQ(b["deflate_on_oom"], true) << b.dump();
  EXPECT_EQ(b["stats_polling_interval_s"], 1) << b.dump();

  ASSERT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"InstanceStart"})").status, 204) << vm.describe();
  CurlReply late = vm.curl("PUT", "/balloon", R"({"amount_mib":0,"deflate_on_oom":true})");
  EXPECT_EQ(late.status, 400) << late.body;
  EXPECT_EQ(vm.curl("PATCH", "/balloon", R"({"amount_mib":16})").status, 204) << vm.describe();
  b = json::parse(vm.curl("GET", "/balloon").body, nullptr, false);
  EXPECT_EQ(b["amount_mib"], 16) << b.dump();
  CurlReply stats = vm.curl("GET", "/balloon/statistics");
  ASSERT_EQ(stats.status, 200) << stats.body;
  json s = json::parse(stats.body, nullptr, false);
  EXPECT_EQ(s["target_mib"], 16) << s.dump();
  EXPECT_EQ(s["target_pages"], 16 * 256) << s.dump();
  EXPECT_EQ(s["actual_mib"], 0) << "the idle guest has no balloon driver\n" << s.dump();
  CurlReply interval = vm.curl("PATCH", "/balloon/statistics", R"({"stats_polling_interval_s":5})");
  EXPECT_EQ(interval.status, 400) << interval.body;
  EXPECT_EQ(vm.curl("PATCH", "/balloon/statistics", R"({"stats_polling_interval_s":1})").status, 204);
  CurlReply hint = vm.curl("PATCH", "/balloon/hinting/start", "{}");
  EXPECT_EQ(hint.status, 400) << hint.body;
  EXPECT_NE(fault_message(hint.body).find("hinting"), std::string::npos) << hint.body;
  EXPECT_EQ(vm.curl("GET", "/").status, 200);
  EXPECT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"x-microvm-Stop"})").status, 204);
  ASSERT_TRUE(vm.wait_exit(30)) << vm.describe();
}

}  // namespace
}  // namespace microvm::testing
