// Rate limiters on real runs (firmware guests, sandbox on): a disk and the rng under tight
// limits still pass their whole driver tests. Requests are delayed (timerfd on the event
// loop, inside its seccomp role), never failed. The rates themselves are checked with a fake
// clock in tests/unit (timings never decide a test here).
#include <gtest/gtest.h>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

class RateLimitTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_F(RateLimitTest, ThrottledDiskPassesItsDriverTestUnderTheSandbox) {
  TempDir dir;
  std::string disk = dir.write_file("disk.img", std::string(1 << 20, '\x5a'));
  VmRunResult r = run_microvm({"run", "--kernel", firmware_path("virtio_blk_driver"), "--memory", "64M", "--no-rng",
                               "--disk", disk + ",format=raw,iops=400,iops_burst=4,bps=4M"},
                              VmRunOptions{.timeout = std::chrono::seconds(90)});
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("VIRTIOBLK done failures=0").size(), 1u) << r.describe();
  EXPECT_EQ(r.err.find("forbidden system call"), std::string::npos) << r.describe();
}

TEST_F(RateLimitTest, ThrottledRngPassesItsDriverTestUnderTheSandbox) {
  VmRunResult r = run_microvm({"run", "--kernel", firmware_path("virtio_rng_driver"), "--memory", "64M", "--rng",
                               "bps=8K,bps_burst=1K,iops=200"},
                              VmRunOptions{.timeout = std::chrono::seconds(60)});
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("VIRTIORNG done failures=0").size(), 1u) << r.describe();
  EXPECT_EQ(r.err.find("forbidden system call"), std::string::npos) << r.describe();
}

// SIGTERM while requests wait for the limiter: tear-down (on the supervisor thread, under its
// seccomp role) forgets them without a forbidden call, and the VM stops with exit 5.
TEST_F(RateLimitTest, StoppingWhileRequestsWaitStaysInsideTheSandbox) {
  TempDir dir;
  std::string disk = dir.write_file("disk.img", std::string(1 << 20, '\0'));
  std::string script =
      "\"$0\" run --kernel \"$1\" --memory 64M --no-rng --disk \"$2\",format=raw,iops=1,iops_burst=1"
      " </dev/null >/dev/null 2>\"$3\" & p=$!\n"
      "sleep 1.5; kill -TERM $p; wait $p; echo rc=$?\n";
  std::string err_path = dir.path() + "/err";
  VmRunResult r =
      run_process("/bin/sh", {"-c", script, microvm_binary(), firmware_path("virtio_blk_driver"), disk, err_path},
                  VmRunOptions{.timeout = std::chrono::seconds(30)});
  std::string err = read_text_file(err_path);
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_NE(r.out.find("rc=5"), std::string::npos) << r.describe() << err;
  EXPECT_EQ(err.find("forbidden system call"), std::string::npos) << err;
}

TEST_F(RateLimitTest, BadLimitsExit2) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"run", "--kernel", firmware_path("boot_check"), "--rng", "bps=0"},
           {"run", "--kernel", firmware_path("boot_check"), "--disk", "x.raw,format=raw,iops=lots"},
           {"run", "--kernel", firmware_path("boot_check"), "--net", "tap=t0,vhost=on,pps=10"},
       }) {
    VmRunResult r = run_microvm(args);
    EXPECT_EQ(r.exit_code, 2) << r.describe();
  }
}

}  // namespace
}  // namespace microvm::testing
