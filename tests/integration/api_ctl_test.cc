// `microvm ctl` against a real `microvm run --api-sock --kernel <idle firmware>`.
#include <gtest/gtest.h>

#include "tests/integration/support/api_process.h"

namespace microvm::testing {
namespace {

class ApiCtlTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_F(ApiCtlTest, InfoAndStop) {
  ApiVm vm({"--kernel", firmware_path("idle"), "--memory", "32M"});
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  VmRunResult info = run_process(microvm_binary(), {"ctl", "--api-sock", vm.socket(), "info"});
  EXPECT_EQ(info.exit_code, 0) << info.describe();
  EXPECT_NE(info.out.find("state:   Running"), std::string::npos) << info.out;
  VmRunResult json = run_process(microvm_binary(), {"ctl", "info", "--api-sock", vm.socket(), "--json"});
  EXPECT_EQ(json.exit_code, 0) << json.describe();
  EXPECT_NE(json.out.find("\"state\":\"Running\""), std::string::npos) << json.out;

  VmRunResult stop = run_process(microvm_binary(), {"ctl", "--api-sock", vm.socket(), "stop"});
  EXPECT_EQ(stop.exit_code, 0) << stop.describe();
  auto code = vm.wait_exit(30);
  ASSERT_TRUE(code) << vm.describe();
  EXPECT_EQ(*code, 5) << vm.describe();
}

TEST_F(ApiCtlTest, PauseResumeThenShutdownPowersTheGuestOff) {
  // pwrbtn_check waits for the ACPI power button, then powers off (exit 0).
  ApiVm vm({"--kernel", firmware_path("pwrbtn_check"), "--memory", "32M"});
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  auto ctl = [&](const char* what) { return run_process(microvm_binary(), {"ctl", "--api-sock", vm.socket(), what}); };
  VmRunResult r = ctl("pause");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "paused\n");
  EXPECT_NE(ctl("info").out.find("state:   Paused"), std::string::npos);
  r = ctl("pause");
  EXPECT_EQ(r.exit_code, 1) << "already paused: " << r.describe();
  EXPECT_NE(r.err.find("already paused"), std::string::npos) << r.err;
  r = ctl("resume");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(ctl("info").out.find("state:   Running"), std::string::npos);
  r = ctl("shutdown");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto code = vm.wait_exit(60);
  ASSERT_TRUE(code) << vm.describe();
  EXPECT_EQ(*code, 0) << "the guest powered off after the press: " << vm.describe();
}

TEST_F(ApiCtlTest, NoServerIsAnErrorNamingTheSocket) {
  TempDir dir;
  std::string sock = dir.path() + "/absent.sock";
  VmRunResult r = run_process(microvm_binary(), {"ctl", "--api-sock", sock, "info"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find(sock), std::string::npos) << r.describe();
  VmRunResult usage = run_process(microvm_binary(), {"ctl", "--api-sock", sock, "reboot"});
  EXPECT_EQ(usage.exit_code, 2) << usage.describe();
}

}  // namespace
}  // namespace microvm::testing

namespace microvm::testing {
namespace {

// --config-file: Firecracker's JSON boots boot_check at once, with its machine-config.
TEST(ApiConfigFileTest, BootsFirmwareFromAFirecrackerConfig) {
  REQUIRE_KVM();
  TempDir dir;
  std::string cfg =
      dir.write_file("vm.json", R"({"boot-source": {"kernel_image_path": ")" + firmware_path("boot_check") +
                                    R"(", "boot_args": "bootcheck from=file"},
      "machine-config": {"vcpu_count": 2, "mem_size_mib": 64}})");
  VmRunResult r = run_microvm({"run", "--config-file", cfg}, VmRunOptions{.timeout = std::chrono::seconds(60)});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("BOOTCHECK done failures=0").size(), 1u) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("BOOTCHECK cmdline=bootcheck from=file").size(), 1u) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("BOOTCHECK cpus=2 ").size(), 1u) << r.describe();

  std::string bad = dir.write_file("bad.json", R"({"boot-source": {"kernel_image_path": "/nonexistent/vmlinux"}})");
  VmRunResult b = run_microvm({"run", "--config-file", bad});
  EXPECT_EQ(b.exit_code, 2) << b.describe();
  EXPECT_NE(b.err.find("/nonexistent/vmlinux"), std::string::npos) << b.describe();
}

}  // namespace
}  // namespace microvm::testing
