// Rate limiters through the API, end to end: `microvm run --api-sock` configured with curl
// (PUT /drives rate_limiter, PUT /network-interfaces rx/tx_rate_limiter, one_time_burst), a
// firmware guest doing block I/O (virtio_blk_driver in its swap mode, which reads the disk,
// then waits), `microvm ctl rate-limit` at run time, and --config-file. The limits in effect
// are read back from the devices' own gauges in GET /metrics/now, and the configuration from
// GET /vm/config. The tap lives in a private network namespace, so nothing leaks onto the host.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "tests/integration/support/api_process.h"

namespace microvm::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// One counter of GET /metrics/now, or -1 when the group or counter is missing.
int64_t metric(const ApiVm& vm, const std::string& group, const std::string& name) {
  CurlReply r = vm.curl("GET", "/metrics/now");
  auto j = json::parse(r.body, nullptr, false);
  if (r.status != 200 || !j.is_object() || !j.contains(group) || !j[group].contains(name)) return -1;
  return j[group][name].get<int64_t>();
}

VmRunResult ctl(const ApiVm& vm, std::vector<std::string> args) {
  args.insert(args.begin(), {"ctl", "--api-sock", vm.socket()});
  return run_process(microvm_binary(), args, VmRunOptions{.timeout = 30s});
}

std::string drive_body(const std::string& path, const std::string& limiter) {
  return R"({"drive_id":"rootfs","path_on_host":")" + path + R"(","is_root_device":true,"rate_limiter":)" + limiter +
         "}";
}

class ApiRateLimitTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_F(ApiRateLimitTest, PutLimitsHoldFromBootAndCtlChangesThemAtRunTime) {
  ApiVm vm({"--jail", "off"}, {"/usr/bin/unshare", "--net"});
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  std::string disk = vm.dir().write_file("disk.img", std::string(1 << 20, 'd'));
  ASSERT_EQ(vm.curl("PUT", "/boot-source",
                    R"({"kernel_image_path":")" + firmware_path("virtio_blk_driver") +
                        R"(","boot_args":"console=ttyS0 vblk.swap=1"})")
                .status,
            204);
  ASSERT_EQ(vm.curl("PUT", "/machine-config", R"({"vcpu_count":1,"mem_size_mib":64})").status, 204);

  // Refused bodies: 400, a fault_message naming the problem, nothing configured.
  struct Refused {
    std::string path, body, says;
  } refused[] = {
      {"/drives/rootfs", drive_body(disk, R"({"bandwidth":{"size":1000}})"), "size and refill_time are required"},
      {"/drives/rootfs", drive_body(disk, R"({"ops":{"size":1,"refill_time":2000}})"), "below 1 per second"},
      {"/drives/rootfs", drive_body(disk, R"({"iops":{"size":1,"refill_time":1}})"), "unknown field 'iops'"},
      {"/drives/rootfs", drive_body(disk, R"({"ops":{"size":1,"refill_time":1,"one_time_burst":-4}})"),
       "rate_limiter.ops: field 'one_time_burst' must be a non-negative integer"},
      {"/drives/rootfs", drive_body(disk, R"([1])"), "rate_limiter: the request body must be a JSON object"},
      {"/network-interfaces/eth0",
       R"({"iface_id":"eth0","host_dev_name":"mvrl0","tx_rate_limiter":{"ops":{"size":1,"refill_time":1,"one_time_burst":"5"}}})",
       "tx_rate_limiter.ops: field 'one_time_burst' must be a non-negative integer"},
      {"/network-interfaces/eth0",
       R"({"iface_id":"eth0","host_dev_name":"mvrl0","rx_rate_limiter":{"bandwidth":{"size":18446744073709551615,"refill_time":1}}})",
       "rx_rate_limiter.bandwidth: size is too large"},
  };
  for (const auto& r : refused) {
    CurlReply reply = vm.curl("PUT", r.path, r.body);
    EXPECT_EQ(reply.status, 400) << r.body << " -> " << reply.body;
    EXPECT_TRUE(contains(fault_message(reply.body), r.says)) << r.body << " -> " << reply.body;
  }
  json cfg = json::parse(vm.curl("GET", "/vm/config").body);
  EXPECT_TRUE(cfg["drives"].empty()) << cfg.dump();
  EXPECT_TRUE(cfg["network-interfaces"].empty()) << cfg.dump();

  // Accepted: 10 MiB per 100 ms with a one-time 1 MiB; 1000 requests per 100 ms with a
  // one-time 100. The interface: rx 64 KiB per 10 ms, tx 100 frames a second plus 5.
  CurlReply put_drive =
      vm.curl("PUT", "/drives/rootfs",
              drive_body(disk, R"({"bandwidth":{"size":10485760,"refill_time":100,"one_time_burst":1048576},)"
                               R"("ops":{"size":1000,"refill_time":100,"one_time_burst":100}})"));
  ASSERT_EQ(put_drive.status, 204) << put_drive.body;
  CurlReply put_net = vm.curl("PUT", "/network-interfaces/eth0",
                              R"({"iface_id":"eth0","host_dev_name":"mvrl0",)"
                              R"("rx_rate_limiter":{"bandwidth":{"size":65536,"refill_time":10}},)"
                              R"("tx_rate_limiter":{"ops":{"size":100,"refill_time":1000,"one_time_burst":5}}})");
  ASSERT_EQ(put_net.status, 204) << put_net.body;
  cfg = json::parse(vm.curl("GET", "/vm/config").body);
  EXPECT_EQ(cfg["drives"][0]["rate_limiter"]["bandwidth"]["one_time_burst"], 1048576) << cfg.dump();
  EXPECT_EQ(cfg["network-interfaces"][0]["tx_rate_limiter"]["ops"]["size"], 100) << cfg.dump();
  EXPECT_FALSE(cfg["network-interfaces"][0]["rx_rate_limiter"].contains("ops")) << cfg.dump();

  // Firecracker's entropy device is virtio-rng, with the same rate limiter object.
  CurlReply entropy = vm.curl("PUT", "/entropy", R"({"rate_limiter":{"bandwidth":{"size":4096,"refill_time":1000}}})");
  EXPECT_EQ(entropy.status, 204) << entropy.body;
  entropy = vm.curl("PUT", "/entropy", R"({"rate_limiter":{"bandwidth":{"size":4096}}})");
  EXPECT_EQ(entropy.status, 400) << entropy.body;
  EXPECT_TRUE(contains(fault_message(entropy.body), "refill_time")) << entropy.body;
  // The rest of the pre-boot surface a Firecracker client touches, and an endpoint with no
  // counterpart (a 400 that says why, not a 404).
  CurlReply version = vm.curl("GET", "/version");
  EXPECT_EQ(version.status, 200) << version.body;
  EXPECT_TRUE(json::parse(version.body, nullptr, false).contains("firecracker_version")) << version.body;
  EXPECT_EQ(vm.curl("PUT", "/logger", R"({"level":"Info"})").status, 204);
  CurlReply cpu = vm.curl("PUT", "/cpu-config", "{}");
  EXPECT_EQ(cpu.status, 400) << cpu.body;
  EXPECT_TRUE(contains(fault_message(cpu.body), "CPU templates")) << cpu.body;

  ASSERT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"InstanceStart"})").status, 204) << vm.describe();
  ASSERT_TRUE(vm.wait_for_output("VIRTIOBLK swap-ready")) << vm.describe();
  EXPECT_EQ(metric(vm, "rng", "rate_limit_bandwidth_per_s"), 4096);

  // In effect on the devices, from boot: the guest's reads were paid from the one-time bursts.
  EXPECT_EQ(metric(vm, "block_rootfs", "rate_limit_bandwidth_per_s"), 104857600);
  EXPECT_EQ(metric(vm, "block_rootfs", "rate_limit_bandwidth_size"), 10485760);
  EXPECT_EQ(metric(vm, "block_rootfs", "rate_limit_ops_per_s"), 10000);
  int64_t bytes_left = metric(vm, "block_rootfs", "rate_limit_bandwidth_one_time_left");
  int64_t ops_left = metric(vm, "block_rootfs", "rate_limit_ops_one_time_left");
  EXPECT_GE(bytes_left, 0);
  EXPECT_LT(bytes_left, 1048576) << "the guest's reads did not come out of the one-time burst";
  EXPECT_GE(ops_left, 0);
  EXPECT_LT(ops_left, 100) << "the guest's requests did not come out of the one-time burst";
  EXPECT_EQ(metric(vm, "block_rootfs", "rate_limiter_throttled"), 0) << "the guest stayed within its burst";
  EXPECT_EQ(metric(vm, "net_eth0", "rx_rate_limit_bandwidth_per_s"), 6553600);
  EXPECT_EQ(metric(vm, "net_eth0", "rx_rate_limit_ops_per_s"), 0);
  EXPECT_EQ(metric(vm, "net_eth0", "tx_rate_limit_ops_per_s"), 100);
  EXPECT_EQ(metric(vm, "net_eth0", "tx_rate_limit_ops_one_time_left"), 5);
  EXPECT_EQ(metric(vm, "net_eth0", "tx_rate_limit_bandwidth_per_s"), 0);

  // Too late for PUT.
  CurlReply late = vm.curl("PUT", "/drives/rootfs", drive_body(disk, R"({"ops":{"size":1,"refill_time":1}})"));
  EXPECT_EQ(late.status, 400) << late.body;
  EXPECT_TRUE(contains(fault_message(late.body), "after the microVM has started")) << late.body;

  // microvm ctl rate-limit: a new ops bucket with a fresh one-time burst; the bandwidth bucket
  // keeps its limit and what is left of its burst.
  VmRunResult ops = ctl(vm, {"rate-limit", "drive", "rootfs", "--ops", "50/1s+7"});
  EXPECT_EQ(ops.exit_code, 0) << ops.describe();
  EXPECT_TRUE(contains(ops.out, "drive rootfs: ops 50 per 1000 ms, one-time burst 7; other buckets unchanged"))
      << ops.describe();
  EXPECT_EQ(metric(vm, "block_rootfs", "rate_limit_ops_per_s"), 50);
  EXPECT_EQ(metric(vm, "block_rootfs", "rate_limit_ops_size"), 50);
  EXPECT_EQ(metric(vm, "block_rootfs", "rate_limit_ops_one_time_left"), 7);
  EXPECT_EQ(metric(vm, "block_rootfs", "rate_limit_bandwidth_per_s"), 104857600);
  EXPECT_EQ(metric(vm, "block_rootfs", "rate_limit_bandwidth_one_time_left"), bytes_left);

  VmRunResult net =
      ctl(vm, {"--json", "rate-limit", "net", "eth0", "--tx-bandwidth", "1M/100ms", "--rx-bandwidth", "off"});
  EXPECT_EQ(net.exit_code, 0) << net.describe();
  json sent = json::parse(net.out, nullptr, false);
  ASSERT_TRUE(sent.is_object()) << net.describe();
  EXPECT_EQ(sent["iface_id"], "eth0");
  EXPECT_EQ(sent["tx_rate_limiter"]["bandwidth"]["size"], 1048576);
  EXPECT_EQ(sent["tx_rate_limiter"]["bandwidth"]["refill_time"], 100);
  EXPECT_EQ(sent["rx_rate_limiter"]["bandwidth"]["size"], 0);
  EXPECT_EQ(metric(vm, "net_eth0", "tx_rate_limit_bandwidth_per_s"), 10485760);
  EXPECT_EQ(metric(vm, "net_eth0", "tx_rate_limit_ops_per_s"), 100) << "tx ops was not named: kept";
  EXPECT_EQ(metric(vm, "net_eth0", "rx_rate_limit_bandwidth_per_s"), 0) << "off lifts the limit";

  // The same through curl, and its refusals (the VM stays up, the limits stay).
  CurlReply patch = vm.curl("PATCH", "/drives/rootfs",
                            R"({"drive_id":"rootfs","rate_limiter":{"bandwidth":{"size":2048,"refill_time":1,)"
                            R"("one_time_burst":4096}}})");
  EXPECT_EQ(patch.status, 204) << patch.body;
  EXPECT_EQ(metric(vm, "block_rootfs", "rate_limit_bandwidth_per_s"), 2048000);
  EXPECT_EQ(metric(vm, "block_rootfs", "rate_limit_bandwidth_one_time_left"), 4096);
  CurlReply bad = vm.curl("PATCH", "/drives/rootfs",
                          R"({"drive_id":"rootfs","rate_limiter":{"ops":{"size":1,"refill_time":1,"burst":9}}})");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_TRUE(contains(fault_message(bad.body), "rate_limiter.ops: unknown field 'burst'")) << bad.body;
  bad = vm.curl("PATCH", "/network-interfaces/eth0",
                R"({"iface_id":"eth0","tx_rate_limiter":{"ops":{"size":1,"refill_time":5000}}})");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_TRUE(contains(fault_message(bad.body), "tx_rate_limiter.ops: a rate below 1 per second")) << bad.body;
  EXPECT_EQ(metric(vm, "net_eth0", "tx_rate_limit_ops_per_s"), 100) << "a refused PATCH changed the limit";

  cfg = json::parse(vm.curl("GET", "/vm/config").body);
  EXPECT_EQ(cfg["drives"][0]["rate_limiter"]["bandwidth"]["size"], 2048) << cfg.dump();
  EXPECT_EQ(cfg["drives"][0]["rate_limiter"]["ops"]["one_time_burst"], 7) << cfg.dump();
  EXPECT_EQ(cfg["network-interfaces"][0]["tx_rate_limiter"]["bandwidth"]["size"], 1048576) << cfg.dump();
  EXPECT_EQ(cfg["network-interfaces"][0]["tx_rate_limiter"]["ops"]["size"], 100) << cfg.dump();
  EXPECT_FALSE(cfg["network-interfaces"][0].contains("rx_rate_limiter")) << cfg.dump();

  // ctl's own refusals: bad arguments exit 2 before sending anything; the server's exit 1.
  VmRunResult wrong_kind = ctl(vm, {"rate-limit", "drive", "rootfs", "--rx-ops", "1/1s"});
  EXPECT_EQ(wrong_kind.exit_code, 2) << wrong_kind.describe();
  EXPECT_TRUE(contains(wrong_kind.err, "--rx-ops is for network interfaces")) << wrong_kind.describe();
  VmRunResult bad_spec = ctl(vm, {"rate-limit", "drive", "rootfs", "--ops", "1/1h"});
  EXPECT_EQ(bad_spec.exit_code, 2) << bad_spec.describe();
  EXPECT_TRUE(contains(bad_spec.err, "refill time")) << bad_spec.describe();
  VmRunResult nothing = ctl(vm, {"rate-limit", "net", "eth0"});
  EXPECT_EQ(nothing.exit_code, 2) << nothing.describe();
  VmRunResult unknown = ctl(vm, {"rate-limit", "drive", "nosuch", "--ops", "1/1s"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.describe();
  EXPECT_TRUE(contains(unknown.err, "no drive 'nosuch'")) << unknown.describe();

  EXPECT_EQ(vm.curl("GET", "/").status, 200) << vm.describe();
  EXPECT_EQ(metric(vm, "block_rootfs", "needs_reset"), 0);
  EXPECT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"x-microvm-Stop"})").status, 204);
  ASSERT_TRUE(vm.wait_exit(30)) << vm.describe();
}

// Firecracker's configuration file takes the same rate_limiter objects.
TEST_F(ApiRateLimitTest, ConfigFileLimitsAreInEffect) {
  TempDir dir;
  std::string disk = dir.write_file("disk.img", std::string(1 << 20, 'c'));
  std::string cfg =
      dir.write_file("vm.json", R"({"boot-source": {"kernel_image_path": ")" + firmware_path("virtio_blk_driver") +
                                    R"(", "boot_args": "console=ttyS0 vblk.swap=1"},
      "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
      "drives": [{"drive_id": "rootfs", "path_on_host": ")" +
                                    disk + R"(", "is_root_device": true,
                  "rate_limiter": {"ops": {"size": 300, "refill_time": 1000, "one_time_burst": 400}}}]})");
  ApiVm vm({"--jail", "off", "--config-file", cfg});
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  ASSERT_TRUE(vm.wait_for_output("VIRTIOBLK swap-ready")) << vm.describe();
  EXPECT_EQ(metric(vm, "block_rootfs", "rate_limit_ops_per_s"), 300);
  EXPECT_EQ(metric(vm, "block_rootfs", "rate_limit_ops_size"), 300);
  int64_t left = metric(vm, "block_rootfs", "rate_limit_ops_one_time_left");
  EXPECT_GE(left, 0);
  EXPECT_LT(left, 400) << "the guest's requests did not come out of the one-time burst";
  EXPECT_EQ(metric(vm, "block_rootfs", "rate_limit_bandwidth_per_s"), 0);

  std::string bad =
      dir.write_file("bad.json", R"({"boot-source": {"kernel_image_path": ")" + firmware_path("virtio_blk_driver") +
                                     R"("}, "drives": [{"drive_id": "rootfs", "path_on_host": ")" + disk +
                                     R"(", "is_root_device": true, "rate_limiter": {"ops": {"size": 5}}}]})");
  VmRunResult b = run_microvm({"run", "--config-file", bad});
  EXPECT_EQ(b.exit_code, 2) << b.describe();
  EXPECT_TRUE(contains(b.err, "drives[0]: rate_limiter.ops: size and refill_time are required")) << b.describe();
}

}  // namespace
}  // namespace microvm::testing
