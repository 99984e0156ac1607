// The exit-code contract of `microvm run`, driven by boot_check's exit modes
// ("bootcheck.exit=..."): 0 powered off, 3 reboot (i8042, ACPI reset register, port
// 0xcf9), 4 crashed (triple fault, with a register dump on stderr), 5 stopped by the
// user (C-a x) or a signal. Also --boot-timer: boot_check writes marker 1 first thing.
#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

VmRunResult boot_with(const std::string& cmdline, const VmRunOptions& options = {.timeout = std::chrono::seconds(30)},
                      std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"run",       "--kernel", firmware_path("boot_check"), "--memory", "64M",
                                   "--cmdline", cmdline};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_microvm(args, options);
}

class FirmwareExitTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_F(FirmwareExitTest, PowerOffIsZero) {
  VmRunResult r = boot_with("bootcheck.exit=poweroff");
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

class FirmwareResetTest : public FirmwareExitTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(FirmwareResetTest, ResetIsThree) {
  VmRunResult r = boot_with("bootcheck.exit=" + GetParam());
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("BOOTCHECK exit=" + GetParam()).size(), 1u) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("BOOTCHECK FAIL").size(), 0u) << r.describe();
}

INSTANTIATE_TEST_SUITE_P(Resets, FirmwareResetTest, ::testing::Values("i8042", "acpi-reset", "cf9"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::erase(n, '-');
                           return n;
                         });

TEST_F(FirmwareExitTest, TripleFaultIsFourWithRegisterDump) {
  VmRunResult r = boot_with("bootcheck.exit=triple-fault");
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 4) << r.describe();
  EXPECT_NE(r.err.find("RIP="), std::string::npos) << "no register dump\n" << r.describe();
}

TEST_F(FirmwareExitTest, CtrlAXStopsAHaltedGuestWithFive) {
  VmRunOptions o{.timeout = std::chrono::seconds(30)};
  o.interactions = {{"BOOTCHECK exit=halt", "\x01x"}};
  o.stdin_pty = true;  // microvm honours C-a only on a terminal
  VmRunResult r = boot_with("bootcheck.exit=halt", o);
  ASSERT_FALSE(r.timed_out) << "C-a x did not stop the VM\n" << r.describe();
  EXPECT_EQ(r.exit_code, 5) << r.describe();
}

TEST_F(FirmwareExitTest, SigtermStopsAHaltedGuestWithFive) {
  // The harness has no "send a signal" step, so a shell wrapper does it: start microvm,
  // wait for the halt line on its console, SIGTERM it, report its exit status.
  TempDir dir;
  std::string out = dir.path() + "/console";
  std::string script =
      "\"$0\" run --kernel \"$1\" --memory 64M --cmdline bootcheck.exit=halt > \"$2\" 2>&1 &\n"
      "pid=$!\n"
      "for i in $(seq 1 300); do grep -q 'BOOTCHECK exit=halt' \"$2\" && break; sleep 0.05; done\n"
      "kill -TERM $pid\n"
      "wait $pid\n"
      "echo \"status=$?\"\n";
  VmRunResult r = run_process("/bin/sh", {"-c", script, microvm_binary(), firmware_path("boot_check"), out},
                              VmRunOptions{.timeout = std::chrono::seconds(40)});
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_NE(r.out.find("status=5"), std::string::npos) << r.describe();
}

TEST_F(FirmwareExitTest, BootTimerSeesTheMarker) {
  VmRunResult r = boot_with("bootcheck.exit=poweroff", {.timeout = std::chrono::seconds(30)}, {"--boot-timer"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  // "microvm: boot-timer: first KVM_RUN at <us> us, guest boot marker at <us> us"
  size_t at = r.err.find("guest boot marker at ");
  ASSERT_NE(at, std::string::npos) << r.describe();
  std::string value = r.err.substr(at + 21, r.err.find(' ', at + 21) - at - 21);
  ASSERT_FALSE(value.empty());
  EXPECT_NE(value, "-") << "the marker write (port 0x402) was not recorded\n" << r.describe();
  size_t first = r.err.find("first KVM_RUN at ");
  ASSERT_NE(first, std::string::npos);
  long first_us = std::strtol(r.err.c_str() + first + 17, nullptr, 10);
  long marker_us = std::strtol(value.c_str(), nullptr, 10);
  EXPECT_GT(marker_us, first_us) << r.describe();
}

TEST_F(FirmwareExitTest, BootTimerPrintsEachMarkWhenItHappens) {
  VmRunResult r = boot_with("bootcheck.exit=poweroff", {.timeout = std::chrono::seconds(30)}, {"--boot-timer"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  // One line per mark as it happens, before the summary line printed at exit.
  size_t live_run = r.err.find("microvm: boot-timer: first KVM_RUN at ");
  size_t live_marker = r.err.find("microvm: boot-timer: guest boot marker at ");
  size_t summary = r.err.find(", guest boot marker at ");
  ASSERT_NE(live_run, std::string::npos) << r.describe();
  ASSERT_NE(live_marker, std::string::npos) << r.describe();
  ASSERT_NE(summary, std::string::npos) << r.describe();
  EXPECT_LT(live_run, live_marker);
  EXPECT_LT(live_marker, summary);
  EXPECT_NE(r.err.find(" us\r\n", live_marker), std::string::npos) << "a mark line must end its line on a raw terminal";
}

}  // namespace
}  // namespace microvm::testing
