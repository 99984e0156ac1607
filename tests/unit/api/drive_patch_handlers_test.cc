// PATCH /drives/ID: refused before start and for bodies it cannot honour; after start the
// launcher gets the drive, path and format, its error becomes the fault message, and
// GET /vm/config shows the new path after a swap.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "api/controller.h"
#include "api/router.h"
#include "tests/testing/temp_file_for_api.h"

namespace microvm::api {
namespace {

using json = nlohmann::json;

class SwapLauncher : public VmLauncher {
 public:
  Result<void> start(const VmConfig&) override { return {}; }
  void stop() override {}
  Result<void> swap_disk(const std::string& id, const std::string& path, std::optional<DiskFormat> format) override {
    ++calls;
    last_id = id, last_path = path, last_format = format;
    if (path.ends_with("locked.img")) return fail(EAGAIN, "disk " + path + ": locked by process 42");
    return {};
  }
  Result<void> set_disk_rate_limit(const std::string& id, const RateLimitUpdate& change) override {
    ++calls;
    last_id = id;
    disk_limit = change;
    return {};
  }
  Result<void> set_net_rate_limit(const std::string& id, const RateLimitUpdate& rx,
                                  const RateLimitUpdate& tx) override {
    ++calls;
    if (id != "eth0") return fail(ENOENT, "no network interface '" + id + "'");
    last_id = id;
    net_rx = rx, net_tx = tx;
    return {};
  }
  int calls = 0;
  std::string last_id, last_path;
  std::optional<DiskFormat> last_format;
  RateLimitUpdate disk_limit, net_rx, net_tx;
};

class DrivePatchHandlersTest : public ::testing::Test {
 protected:
  HttpResponse call(const std::string& method, const std::string& path, const std::string& body = "") {
    return route(controller, HttpRequest{method, path, body});
  }
  std::string message(const HttpResponse& r) { return json::parse(r.body)["fault_message"].get<std::string>(); }
  void configure() {
    ASSERT_EQ(call("PUT", "/boot-source", json{{"kernel_image_path", kernel.path()}}.dump()).status, 204);
    ASSERT_EQ(call("PUT", "/drives/rootfs",
                   json{{"drive_id", "rootfs"}, {"path_on_host", disk.path()}, {"is_root_device", true}}.dump())
                  .status,
              204);
  }
  void start() { ASSERT_EQ(call("PUT", "/actions", R"({"action_type": "InstanceStart"})").status, 204); }
  testing::ScratchFile kernel{"kernel"};
  testing::ScratchFile disk{"disk"};
  SwapLauncher launcher;
  Controller controller{VmConfig{}, InstanceInfo{"id", "1.0"}, launcher};
};

TEST_F(DrivePatchHandlersTest, BeforeStartItPointsAtPut) {
  configure();
  auto r = call("PATCH", "/drives/rootfs", json{{"drive_id", "rootfs"}, {"path_on_host", "/x.img"}}.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(message(r).find("before InstanceStart use PUT /drives/rootfs"), std::string::npos) << r.body;
  EXPECT_EQ(launcher.calls, 0);
}

TEST_F(DrivePatchHandlersTest, BodiesItCannotHonourAreRefusedBeforeTheLauncher) {
  configure();
  start();
  struct Case {
    std::string body, says;
  } cases[] = {
      {R"({"drive_id": "other", "path_on_host": "/x.img"})", "must match"},
      {R"({"path_on_host": "/x.img"})", "must match"},
      {R"({"drive_id": "rootfs", "path_on_host": ""})", "path is empty"},
      {R"({"drive_id": "rootfs", "path_on_host": 7})", "path_on_host"},
      {R"({"drive_id": "rootfs", "path_on_host": "/x.img", "is_read_only": true})", "is_read_only"},
      {R"({"drive_id": "rootfs", "path_on_host": "/x.img", "x-microvm-format": "vmdk"})", "x-microvm-format"},
      {R"({"drive_id": "rootfs"})", "nothing to change"},
      {R"({"drive_id": "rootfs", "rate_limiter": {"bandwidth": {"size": 1, "refill_time": 1, "one_time_burst": -5}}})",
       "rate_limiter.bandwidth: field 'one_time_burst' must be a non-negative integer"},
      {R"({"drive_id": "rootfs", "rate_limiter": {"ops": {"size": 1, "refill_time": 2000}}})", "below 1 per second"},
      {R"({"drive_id": "rootfs", "rate_limiter": {"ops": {"size": 1}}})", "refill_time are required"},
      {R"({"drive_id": "rootfs", "rate_limiter": {"ops": {"size": 1, "refill_time": 10, "x": 1}}})",
       "unknown field 'x'"},
      {R"({"drive_id": "rootfs", "rate_limiter": {"iops": {}}})", "unknown field 'iops'"},
      {R"({"drive_id": "rootfs", "rate_limiter": {"ops": {"size": 18446744073709551615, "refill_time": 10}}})",
       "too large"},
      {R"({"drive_id": "rootfs", "path_on_host": "/x.img")", ""},
  };
  for (const auto& c : cases) {
    auto r = call("PATCH", "/drives/rootfs", c.body);
    EXPECT_EQ(r.status, 400) << c.body;
    EXPECT_NE(message(r).find(c.says), std::string::npos) << c.body << " -> " << r.body;
  }
  EXPECT_EQ(launcher.calls, 0);
}

TEST_F(DrivePatchHandlersTest, SwapGoesToTheLauncherAndShowsInVmConfig) {
  configure();
  start();
  auto r = call("PATCH", "/drives/rootfs",
                json{{"drive_id", "rootfs"}, {"path_on_host", "/new.qcow2"}, {"x-microvm-format", "qcow2"}}.dump());
  ASSERT_EQ(r.status, 204) << r.body;
  EXPECT_EQ(launcher.last_id, "rootfs");
  EXPECT_EQ(launcher.last_path, "/new.qcow2");
  EXPECT_EQ(launcher.last_format, DiskFormat::kQcow2);
  auto cfg = json::parse(call("GET", "/vm/config").body);
  EXPECT_EQ(cfg["drives"][0]["path_on_host"], "/new.qcow2");

  r = call("PATCH", "/drives/rootfs", json{{"drive_id", "rootfs"}, {"path_on_host", "/locked.img"}}.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(message(r).find("locked by process 42"), std::string::npos) << r.body;
  cfg = json::parse(call("GET", "/vm/config").body);
  EXPECT_EQ(cfg["drives"][0]["path_on_host"], "/new.qcow2") << "a refused swap changes nothing";
  // A drive the API never configured (a --disk of the command line) is the launcher's to find.
  r = call("PATCH", "/drives/drive0", json{{"drive_id", "drive0"}, {"path_on_host", "/d.img"}}.dump());
  EXPECT_EQ(r.status, 204) << r.body;
  EXPECT_EQ(launcher.last_format, std::nullopt);
}

TEST_F(DrivePatchHandlersTest, RateLimitersInFirecrackersShapeReachTheLauncher) {
  configure();
  start();
  auto r = call("PATCH", "/drives/rootfs",
                R"({"drive_id": "rootfs", "rate_limiter": {"bandwidth": {"size": 1048576, "refill_time": 500},
                                                         "ops": {"size": 0, "refill_time": 100}}})");
  ASSERT_EQ(r.status, 204) << r.body;
  ASSERT_TRUE(launcher.disk_limit.bytes.has_value());
  EXPECT_EQ(launcher.disk_limit.bytes->per_second, 2u * 1048576);  // 1 MiB per 500 ms
  EXPECT_EQ(launcher.disk_limit.bytes->burst, 1048576u);
  ASSERT_TRUE(launcher.disk_limit.ops.has_value());
  EXPECT_FALSE(launcher.disk_limit.ops->limited()) << "size 0 disables the bucket";

  r = call("PATCH", "/network-interfaces/eth0",
           R"({"iface_id": "eth0", "tx_rate_limiter": {"ops": {"size": 100, "refill_time": 1000}}})");
  ASSERT_EQ(r.status, 204) << r.body;
  EXPECT_TRUE(launcher.net_rx.empty()) << "rx was not named: unchanged";
  ASSERT_TRUE(launcher.net_tx.ops.has_value());
  EXPECT_EQ(launcher.net_tx.ops->per_second, 100u);
  EXPECT_FALSE(launcher.net_tx.bytes.has_value());

  r = call("PATCH", "/network-interfaces/eth9",
           R"({"iface_id": "eth9", "rx_rate_limiter": {"ops": {"size": 100, "refill_time": 1000}}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(message(r).find("no network interface 'eth9'"), std::string::npos) << r.body;
  for (
      const char* bad :
      {R"({"iface_id": "eth0"})", R"({"iface_id": "eth1", "rx_rate_limiter": null})",
       R"({"iface_id": "eth0", "host_dev_name": "tap0"})",
       R"({"iface_id": "eth0", "rx_rate_limiter": {"bandwidth": {"size": 1, "refill_time": 1, "one_time_burst": "1"}}})"}) {
    r = call("PATCH", "/network-interfaces/eth0", bad);
    EXPECT_EQ(r.status, 400) << bad;
  }
}

// one_time_burst reaches the launcher; GET /vm/config shows each bucket as last given (a
// PATCH replaces only the buckets it names, a disabled one disappears).
TEST_F(DrivePatchHandlersTest, OneTimeBurstAndPutLimitsShowInVmConfig) {
  ASSERT_EQ(call("PUT", "/boot-source", json{{"kernel_image_path", kernel.path()}}.dump()).status, 204);
  auto r = call("PUT", "/drives/rootfs",
                json{{"drive_id", "rootfs"},
                     {"path_on_host", disk.path()},
                     {"is_root_device", true},
                     {"rate_limiter",
                      {{"bandwidth", {{"size", 1000}, {"refill_time", 100}, {"one_time_burst", 5000}}},
                       {"ops", {{"size", 10}, {"refill_time", 1000}}}}}}
                    .dump());
  ASSERT_EQ(r.status, 204) << r.body;
  r = call("PUT", "/network-interfaces/eth0",
           R"({"iface_id": "eth0", "host_dev_name": "tap0",
               "rx_rate_limiter": {"ops": {"size": 100, "refill_time": 1000, "one_time_burst": 50}}})");
  ASSERT_EQ(r.status, 204) << r.body;
  start();
  auto cfg = json::parse(call("GET", "/vm/config").body);
  EXPECT_EQ(cfg["drives"][0]["rate_limiter"]["bandwidth"]["one_time_burst"], 5000);
  EXPECT_EQ(cfg["drives"][0]["rate_limiter"]["ops"]["size"], 10);
  EXPECT_EQ(cfg["network-interfaces"][0]["rx_rate_limiter"]["ops"]["one_time_burst"], 50);
  EXPECT_FALSE(cfg["network-interfaces"][0].contains("tx_rate_limiter"));

  r = call("PATCH", "/drives/rootfs",
           R"({"drive_id": "rootfs", "rate_limiter": {"bandwidth": {"size": 0, "refill_time": 0},
                                                    "ops": {"size": 4, "refill_time": 10, "one_time_burst": 40}}})");
  ASSERT_EQ(r.status, 204) << r.body;
  ASSERT_TRUE(launcher.disk_limit.ops.has_value());
  EXPECT_EQ(launcher.disk_limit.ops->per_second, 400u);
  EXPECT_EQ(launcher.disk_limit.ops->burst, 4u);
  EXPECT_EQ(launcher.disk_limit.ops->one_time_burst, 40u);
  r = call("PATCH", "/network-interfaces/eth0",
           R"({"iface_id": "eth0", "tx_rate_limiter": {"bandwidth": {"size": 4096, "refill_time": 1}}})");
  ASSERT_EQ(r.status, 204) << r.body;
  cfg = json::parse(call("GET", "/vm/config").body);
  EXPECT_FALSE(cfg["drives"][0]["rate_limiter"].contains("bandwidth")) << cfg.dump();
  EXPECT_EQ(cfg["drives"][0]["rate_limiter"]["ops"]["one_time_burst"], 40);
  EXPECT_EQ(cfg["network-interfaces"][0]["rx_rate_limiter"]["ops"]["size"], 100) << "rx was not named: kept";
  EXPECT_EQ(cfg["network-interfaces"][0]["tx_rate_limiter"]["bandwidth"]["size"], 4096);
}

TEST_F(DrivePatchHandlersTest, NetworkInterfacePatchBeforeStartPointsAtPut) {
  auto r = call("PATCH", "/network-interfaces/eth0",
                R"({"iface_id": "eth0", "rx_rate_limiter": {"ops": {"size": 100, "refill_time": 1000}}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(message(r).find("before InstanceStart use PUT"), std::string::npos) << r.body;
  EXPECT_EQ(launcher.calls, 0);
}

}  // namespace
}  // namespace microvm::api
