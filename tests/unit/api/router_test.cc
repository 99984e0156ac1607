// Routing and handlers without sockets: requests in, status codes and bodies out, with a
// launcher that records what InstanceStart would create.
#include "api/router.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/testing/temp_file_for_api.h"

namespace microvm::api {
namespace {

using nlohmann::json;

class RecordingLauncher : public VmLauncher {
 public:
  Result<void> start(const VmConfig& config) override {
    ++starts;
    last = config;
    if (!fail_with.empty()) return fail(EINVAL, fail_with);
    return {};
  }
  void stop() override { ++stops; }
  Result<void> pause() override { return ++pauses, Result<void>{}; }
  Result<void> resume() override { return ++resumes, Result<void>{}; }
  Result<void> request_shutdown() override { return ++shutdowns, Result<void>{}; }
  std::vector<MetricGroup> metrics() override { return groups; }
  std::vector<MetricGroup> groups;
  int starts = 0;
  int stops = 0;
  int pauses = 0;
  int resumes = 0;
  int shutdowns = 0;
  std::string fail_with;
  VmConfig last;
};

class RouterTest : public ::testing::Test {
 protected:
  HttpResponse call(const std::string& method, const std::string& path, const std::string& body = "") {
    return route(controller, HttpRequest{method, path, body});
  }
  std::string fault_of(const HttpResponse& r) {
    auto j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.contains("fault_message")) return "<no fault_message in '" + r.body + "'>";
    return j["fault_message"].get<std::string>();
  }
  void configure_boot() {
    ASSERT_EQ(
        call("PUT", "/boot-source", json{{"kernel_image_path", kernel.path()}, {"boot_args", "console=ttyS0"}}.dump())
            .status,
        204);
  }

  testing::ScratchFile kernel{"kernel"};
  testing::ScratchFile disk{"disk"};
  RecordingLauncher launcher;
  Controller controller{VmConfig{}, InstanceInfo{"test-id", "9.9.9"}, launcher};
};

TEST_F(RouterTest, InstanceInfoBeforeStart) {
  auto r = call("GET", "/");
  ASSERT_EQ(r.status, 200);
  auto j = json::parse(r.body);
  EXPECT_EQ(j["id"], "test-id");
  EXPECT_EQ(j["state"], "Not started");
  EXPECT_EQ(j["vmm_version"], "9.9.9");
  EXPECT_EQ(j["app_name"], "microvm");
  EXPECT_EQ(json::parse(call("GET", "/version").body)["firecracker_version"], "9.9.9");
}

TEST_F(RouterTest, UnknownPathIs404AndWrongMethodIs405) {
  EXPECT_EQ(call("GET", "/nope").status, 404);
  EXPECT_EQ(call("GET", "/drives/a/b").status, 404);
  auto r = call("DELETE", "/machine-config");
  EXPECT_EQ(r.status, 405);
  EXPECT_NE(fault_of(r).find("DELETE"), std::string::npos);
  EXPECT_EQ(call("GET", "/boot-source").status, 405);
}

// Firecracker endpoints microvm does not serve are a 400 saying why; unknown ones stay 404.
TEST_F(RouterTest, FirecrackerEndpointsWithoutCounterpartSayWhy) {
  struct Case {
    const char *method, *path, *says;
  } cases[] = {
      {"PUT", "/cpu-config", "CPU templates"},
      {"PUT", "/mmds", "MMDS"},
      {"GET", "/mmds", "MMDS"},
      {"PUT", "/mmds/config", "MMDS"},
      {"PUT", "/serial", "stdout"},
      {"GET", "/hotplug/memory", "virtio-mem"},
      {"PATCH", "/balloon/hinting/start", "hinting"},
      {"GET", "/balloon/hinting/status", "hinting"},
      {"PUT", "/pmem/pm0", "--pmem"},
  };
  for (const auto& c : cases) {
    auto r = call(c.method, c.path, "{}");
    EXPECT_EQ(r.status, 400) << c.path;
    EXPECT_NE(fault_of(r).find(c.says), std::string::npos) << c.path << ": " << r.body;
  }
  EXPECT_EQ(call("PUT", "/cpu-configs").status, 404);
}

// PUT /entropy (virtio-rng) before start, with Firecracker's rate limiter.
TEST_F(RouterTest, EntropyDeviceWithRateLimiter) {
  controller.config().rng = false;  // as after --no-rng
  EXPECT_EQ(call("PUT", "/entropy", R"({"rate_limiter":{"ops":{"size":5}}})").status, 400);
  EXPECT_EQ(call("PUT", "/entropy", R"({"rng":true})").status, 400);
  EXPECT_FALSE(controller.config().rng) << "a refused body changes nothing";
  auto r =
      call("PUT", "/entropy", R"({"rate_limiter":{"bandwidth":{"size":1000,"refill_time":100,"one_time_burst":10}}})");
  ASSERT_EQ(r.status, 204) << r.body;
  EXPECT_TRUE(controller.config().rng);
  EXPECT_EQ(controller.config().rng_rate_limit.bytes.per_second, 10000u);
  EXPECT_EQ(controller.config().rng_rate_limit.bytes.one_time_burst, 10u);
  EXPECT_EQ(call("PUT", "/entropy", "{}").status, 204);
  EXPECT_FALSE(controller.config().rng_rate_limit.limited());
  EXPECT_EQ(call("GET", "/entropy").status, 405);
  configure_boot();
  ASSERT_EQ(call("PUT", "/actions", R"({"action_type":"InstanceStart"})").status, 204);
  EXPECT_EQ(call("PUT", "/entropy", "{}").status, 400);
}

TEST_F(RouterTest, MachineConfigPutGetPatch) {
  EXPECT_EQ(
      call("PUT", "/machine-config", R"({"vcpu_count":2,"mem_size_mib":128,"smt":false,"track_dirty_pages":true})")
          .status,
      204);
  auto j = json::parse(call("GET", "/machine-config").body);
  EXPECT_EQ(j["vcpu_count"], 2);
  EXPECT_EQ(j["mem_size_mib"], 128);
  EXPECT_EQ(j["track_dirty_pages"], true);
  EXPECT_EQ(call("PATCH", "/machine-config", R"({"mem_size_mib":64})").status, 204);
  j = json::parse(call("GET", "/machine-config").body);
  EXPECT_EQ(j["vcpu_count"], 2);
  EXPECT_EQ(j["mem_size_mib"], 64);
  EXPECT_EQ(controller.config().memory_bytes, 64ull << 20);
}

TEST_F(RouterTest, MachineConfigRejectsBadValuesWithoutChangingAnything) {
  unsigned cpus = controller.config().cpus;
  EXPECT_EQ(call("PUT", "/machine-config", R"({"vcpu_count":2})").status, 400);  // PUT needs both
  EXPECT_EQ(call("PUT", "/machine-config", R"({"vcpu_count":0,"mem_size_mib":64})").status, 400);
  EXPECT_EQ(call("PUT", "/machine-config", R"({"vcpu_count":-1,"mem_size_mib":64})").status, 400);
  EXPECT_EQ(call("PUT", "/machine-config", R"({"vcpu_count":"2","mem_size_mib":64})").status, 400);
  EXPECT_EQ(call("PUT", "/machine-config", R"({"vcpu_count":1,"mem_size_mib":18446744073709551615})").status, 400);
  auto r = call("PUT", "/machine-config", R"({"vcpu_count":2,"mem_size_mib":64,"turbo":true})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(fault_of(r), "unknown field 'turbo'");
  EXPECT_EQ(controller.config().cpus, cpus);
}

TEST_F(RouterTest, BadJsonIs400) {
  auto r = call("PUT", "/boot-source", "{\"kernel_image_path\": ");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(fault_of(r), "the body is not valid JSON");
  EXPECT_EQ(call("PUT", "/boot-source", "[1,2]").status, 400);
  EXPECT_EQ(call("PUT", "/boot-source", "").status, 400);
}

TEST_F(RouterTest, BootSourceNeedsAnExistingKernel) {
  auto r = call("PUT", "/boot-source", R"({"kernel_image_path":"/nonexistent/vmlinux"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_of(r).find("/nonexistent/vmlinux"), std::string::npos) << fault_of(r);
  EXPECT_FALSE(controller.boot_source_set());
}

TEST_F(RouterTest, DrivesNeedMatchingIdAndExistingFile) {
  EXPECT_EQ(call("PUT", "/drives/rootfs",
                 json{{"drive_id", "other"}, {"path_on_host", disk.path()}, {"is_root_device", true}}.dump())
                .status,
            400);
  auto r = call("PUT", "/drives/rootfs",
                R"({"drive_id":"rootfs","path_on_host":"/nonexistent/disk.img","is_root_device":true})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_of(r).find("/nonexistent/disk.img"), std::string::npos);
  EXPECT_EQ(call("PUT", "/drives/rootfs",
                 json{{"drive_id", "rootfs"},
                      {"path_on_host", disk.path()},
                      {"is_root_device", true},
                      {"x-microvm-format", "vmdk"}}
                     .dump())
                .status,
            400);
  EXPECT_EQ(call("PUT", "/drives/r",
                 json{{"drive_id", "r"},
                      {"path_on_host", disk.path()},
                      {"is_root_device", false},
                      {"rate_limiter", {{"ops", {{"size", 10}}}}}}
                     .dump())
                .status,
            400);
  EXPECT_TRUE(controller.drives().empty());
}

TEST_F(RouterTest, GettingStartedSequenceBuildsTheVmConfig) {
  configure_boot();
  ASSERT_EQ(
      call("PUT", "/drives/data",
           json{{"drive_id", "data"}, {"path_on_host", disk.path()}, {"is_root_device", false}, {"is_read_only", true}}
               .dump())
          .status,
      204);
  ASSERT_EQ(call("PUT", "/drives/rootfs",
                 json{{"drive_id", "rootfs"},
                      {"path_on_host", disk.path()},
                      {"is_root_device", true},
                      {"x-microvm-format", "qcow2"},
                      {"rate_limiter", {{"ops", {{"size", 50}, {"refill_time", 100}, {"one_time_burst", 7}}}}}}
                     .dump())
                .status,
            204);
  ASSERT_EQ(call("PUT", "/network-interfaces/eth0",
                 R"({"iface_id":"eth0","host_dev_name":"tap0","guest_mac":"06:00:AC:10:00:02",)"
                 R"("tx_rate_limiter":{"bandwidth":{"size":1000,"refill_time":10}}})")
                .status,
            204);
  ASSERT_EQ(call("PUT", "/machine-config", R"({"vcpu_count":2,"mem_size_mib":256})").status, 204);
  ASSERT_EQ(call("PUT", "/actions", R"({"action_type":"InstanceStart"})").status, 204);
  ASSERT_EQ(launcher.starts, 1);
  const VmConfig& v = launcher.last;
  EXPECT_EQ(v.kernel_path, kernel.path());
  EXPECT_EQ(v.cpus, 2u);
  EXPECT_EQ(v.memory_bytes, 256ull << 20);
  ASSERT_EQ(v.disks.size(), 2u);
  EXPECT_EQ(v.disks[0].format, DiskFormat::kQcow2);  // the root device comes first: /dev/vda
  EXPECT_FALSE(v.disks[0].read_only);
  EXPECT_EQ(v.disks[1].format, DiskFormat::kRaw);
  EXPECT_TRUE(v.disks[1].read_only);
  EXPECT_EQ(v.disks[0].id, "rootfs");  // metrics name drives and interfaces by their API ids
  EXPECT_EQ(v.disks[1].id, "data");
  EXPECT_EQ(v.cmdline, "console=ttyS0 root=/dev/vda rw");
  ASSERT_EQ(v.nets.size(), 1u);
  EXPECT_EQ(v.nets[0].tap, "tap0");
  EXPECT_EQ(v.nets[0].mac, "06:00:AC:10:00:02");
  EXPECT_EQ(v.nets[0].id, "eth0");
  // Rate limiters given at PUT: 50 per 100 ms with a one-time 7; tx only (rx unlimited, and
  // the userspace data path so they can hold frames back).
  EXPECT_EQ(v.disks[0].rate_limit.ops.per_second, 500u);
  EXPECT_EQ(v.disks[0].rate_limit.ops.burst, 50u);
  EXPECT_EQ(v.disks[0].rate_limit.ops.one_time_burst, 7u);
  EXPECT_FALSE(v.disks[0].rate_limit.bytes.limited());
  EXPECT_FALSE(v.disks[1].rate_limit.limited());
  EXPECT_EQ(v.nets[0].rate_limit.bytes.per_second, 100000u);
  ASSERT_TRUE(v.nets[0].rx_rate_limit.has_value());
  EXPECT_FALSE(v.nets[0].rx_rate_limit->limited());
  EXPECT_EQ(v.nets[0].vhost, VhostMode::kOff);
  EXPECT_EQ(json::parse(call("GET", "/").body)["state"], "Running");
}

TEST_F(RouterTest, ConfigurationAfterStartIs400NamingTheResource) {
  configure_boot();
  ASSERT_EQ(call("PUT", "/actions", R"({"action_type":"InstanceStart"})").status, 204);
  auto r = call("PUT", "/machine-config", R"({"vcpu_count":2,"mem_size_mib":64})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_of(r).find("machine configuration"), std::string::npos);
  r = call("PUT", "/boot-source", json{{"kernel_image_path", kernel.path()}}.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_of(r).find("boot source"), std::string::npos);
  EXPECT_EQ(
      call("PUT", "/drives/x", json{{"drive_id", "x"}, {"path_on_host", disk.path()}, {"is_root_device", false}}.dump())
          .status,
      400);
  r = call("PUT", "/actions", R"({"action_type":"InstanceStart"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_of(r).find("already running"), std::string::npos);
  EXPECT_EQ(launcher.starts, 1);
}

TEST_F(RouterTest, StartWithoutBootSourceOrWithLauncherErrorStaysNotStarted) {
  auto r = call("PUT", "/actions", R"({"action_type":"InstanceStart"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_of(r).find("boot source"), std::string::npos);
  EXPECT_EQ(launcher.starts, 0);
  configure_boot();
  launcher.fail_with = "open /gone: No such file or directory";
  r = call("PUT", "/actions", R"({"action_type":"InstanceStart"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(fault_of(r), "open /gone: No such file or directory");
  EXPECT_EQ(controller.state(), InstanceState::kNotStarted);
  launcher.fail_with.clear();
  EXPECT_EQ(call("PUT", "/actions", R"({"action_type":"InstanceStart"})").status, 204);
}

TEST_F(RouterTest, UnsupportedActionsSayNotSupported) {
  auto r = call("PUT", "/actions", R"({"action_type":"FlushMetrics"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_of(r).find("PUT /metrics"), std::string::npos) << fault_of(r);
  EXPECT_EQ(call("PUT", "/actions", R"({"action_type":"Reboot"})").status, 400);
  EXPECT_EQ(call("PUT", "/logger", R"({"log_path":"/tmp/l"})").status, 400);
  EXPECT_EQ(call("PUT", "/logger", R"({"level":"Debug"})").status, 204);
  EXPECT_EQ(controller.config().log_level, LogLevel::kDebug);
}

TEST_F(RouterTest, PauseResumeAndCtrlAltDelNeedARunningVm) {
  auto r = call("PATCH", "/vm", R"({"state":"Paused"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_of(r).find("not started"), std::string::npos) << fault_of(r);
  r = call("PUT", "/actions", R"({"action_type":"SendCtrlAltDel"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(launcher.pauses + launcher.shutdowns, 0);

  controller.mark_running();
  EXPECT_EQ(call("PATCH", "/vm", R"({"state":"Resumed"})").status, 400) << "not paused";
  EXPECT_EQ(call("PATCH", "/vm", R"({"state":"Paused"})").status, 204);
  EXPECT_EQ(launcher.pauses, 1);
  EXPECT_EQ(json::parse(call("GET", "/").body)["state"], "Paused");
  EXPECT_EQ(call("PATCH", "/vm", R"({"state":"Paused"})").status, 400) << "already paused";
  EXPECT_EQ(call("PATCH", "/vm", R"({"state":"Frozen"})").status, 400);
  EXPECT_EQ(call("PATCH", "/vm", R"({"state":"Resumed","extra":1})").status, 400);
  EXPECT_EQ(call("PATCH", "/vm", R"({"state":"Resumed"})").status, 204);
  EXPECT_EQ(launcher.resumes, 1);
  EXPECT_EQ(json::parse(call("GET", "/").body)["state"], "Running");
  EXPECT_EQ(call("PUT", "/actions", R"({"action_type":"SendCtrlAltDel"})").status, 204);
  EXPECT_EQ(launcher.shutdowns, 1);
}

TEST_F(RouterTest, StopActionCallsTheLauncher) {
  EXPECT_EQ(call("PUT", "/actions", R"({"action_type":"x-microvm-Stop"})").status, 204);
  EXPECT_EQ(launcher.stops, 1);
}

TEST_F(RouterTest, VmConfigReflectsTheConfiguration) {
  configure_boot();
  ASSERT_EQ(call("PUT", "/drives/rootfs",
                 json{{"drive_id", "rootfs"}, {"path_on_host", disk.path()}, {"is_root_device", true}}.dump())
                .status,
            204);
  auto j = json::parse(call("GET", "/vm/config").body);
  EXPECT_EQ(j["boot-source"]["kernel_image_path"], kernel.path());
  ASSERT_EQ(j["drives"].size(), 1u);
  EXPECT_EQ(j["drives"][0]["drive_id"], "rootfs");
  EXPECT_EQ(j["drives"][0]["path_on_host"], disk.path());
}

}  // namespace
}  // namespace microvm::api
