// `microvm run --shutdown-timeout N`: SIGTERM presses the guest's ACPI power button first.
#include <gtest/gtest.h>

#include <string>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

class CliShutdownTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }

  // Starts microvm with `extra` options on `firmware`, waits for `ready` on its console,
  // sends SIGTERM (twice when `twice`), and prints the console and "status=<exit code>".
  VmRunResult term_after(const std::string& firmware, const std::string& ready, const std::string& extra,
                         bool twice = false) {
    std::string script = "\"$0\" run --kernel \"$1\" --memory 64M --no-rng " + extra +
                         " > \"$2\" 2>&1 &\n"
                         "pid=$!\n"
                         "for i in $(seq 1 600); do grep -q '" +
                         ready +
                         "' \"$2\" && break; sleep 0.05; done\n"
                         "kill -TERM $pid\n" +
                         std::string(twice ? "sleep 0.5; kill -TERM $pid\n" : "") +
                         "wait $pid\n"
                         "echo \"status=$?\"\n"
                         "cat \"$2\"\n";
    return run_process("/bin/sh", {"-c", script, microvm_binary(), firmware_path(firmware), dir_.path() + "/console"},
                       VmRunOptions{.timeout = std::chrono::seconds(90)});
  }
  TempDir dir_;
};

TEST_F(CliShutdownTest, SigtermPressesPowerButtonAndGuestPowersOff) {
  VmRunResult r = term_after("pwrbtn_check", "PWRBTN ready", "--shutdown-timeout 60");
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_NE(r.out.find("status=0"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("PWRBTN done failures=0"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("pressed the guest's power button"), std::string::npos) << r.describe();
}

TEST_F(CliShutdownTest, GuestIgnoringTheButtonIsStoppedAfterTheTimeout) {
  // pause_clock never enables PWRBTN_EN, so the press goes unnoticed.
  VmRunResult r = term_after("pause_clock", "PAUSECLOCK tick", "--shutdown-timeout 1");
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_NE(r.out.find("status=5"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("did not power off within 1 s"), std::string::npos) << r.describe();
}

TEST_F(CliShutdownTest, SecondSigtermStopsAtOnce) {
  VmRunResult r = term_after("pause_clock", "PAUSECLOCK tick", "--shutdown-timeout 3600", true);
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_NE(r.out.find("status=5"), std::string::npos) << r.describe();
}

TEST_F(CliShutdownTest, WithoutTheOptionSigtermStopsAtOnce) {
  VmRunResult r = term_after("pwrbtn_check", "PWRBTN ready", "");
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_NE(r.out.find("status=5"), std::string::npos) << r.describe();
  EXPECT_EQ(r.out.find("PWRBTN done"), std::string::npos) << r.describe();
}

}  // namespace
}  // namespace microvm::testing
