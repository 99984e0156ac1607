// --pvpanic: a guest panic report through port 0x505 ends microvm with exit code 7.
#include <gtest/gtest.h>

#include <string>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

class CliPvpanicTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
  static VmRunResult boot(std::vector<std::string> extra, const std::string& cmdline = "") {
    std::vector<std::string> args = {
        "run", "--kernel", firmware_path("pvpanic_check"), "--memory", "64M", "--no-rng", "--cmdline", cmdline};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_microvm(args, {.timeout = std::chrono::seconds(60)});
  }
};

TEST_F(CliPvpanicTest, PanicEndsWithExitSeven) {
  VmRunResult r = boot({"--pvpanic"});
  EXPECT_EQ(r.exit_code, 7) << r.describe();
  auto lines = r.lines_with_prefix("PVPANIC ");
  ASSERT_GE(lines.size(), 2u) << r.describe();
  EXPECT_EQ(lines[0], "PVPANIC supported=0x3");
  EXPECT_EQ(lines[1], "PVPANIC crash_loaded sent, still running");  // CRASH_LOADED only logs
  EXPECT_EQ(r.out.find("PVPANIC panicked ignored"), std::string::npos) << r.describe();
  EXPECT_NE(r.err.find("guest kernel panicked (pvpanic)"), std::string::npos) << r.describe();
}

TEST_F(CliPvpanicTest, WithoutTheOptionThePortIsNotDecoded) {
  VmRunResult r = boot({});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  auto lines = r.lines_with_prefix("PVPANIC ");
  ASSERT_EQ(lines.size(), 3u) << r.describe();
  EXPECT_EQ(lines[0], "PVPANIC supported=0xff");  // unhandled port: all ones
  EXPECT_EQ(lines[2], "PVPANIC panicked ignored");
}

TEST_F(CliPvpanicTest, ReadingThePortDoesNotPanic) {
  VmRunResult r = boot({"--pvpanic"}, "pvpanic.event=none");
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("PVPANIC done"), std::string::npos) << r.describe();
}

}  // namespace
}  // namespace microvm::testing
