// Boots firmware/smp_check: the BSP starts every AP the MADT lists through
// INIT-SIPI-SIPI and a real-mode trampoline. Checks that no AP runs before it is
// started, that each AP comes up and reports a distinct MADT APIC ID, and that the VM
// still powers off (exit 0) while the APs sit halted with interrupts off.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

class FirmwareSmpTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_P(FirmwareSmpTest, EveryApStartsAndPowerOffStopsThemAll) {
  const int cpus = GetParam();
  VmRunResult r =
      run_microvm({"run", "--kernel", firmware_path("smp_check"), "--memory", "64M", "--cpus", std::to_string(cpus)},
                  VmRunOptions{.timeout = std::chrono::seconds(60)});
  ASSERT_FALSE(r.timed_out) << "power-off with halted APs did not end the VM?\n" << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("SMPCHECK FAIL").size(), 0u) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("SMPCHECK done failures=0").size(), 1u) << r.describe();
  auto madt = r.lines_with_prefix("SMPCHECK madt_cpus=");
  ASSERT_EQ(madt.size(), 1u) << r.describe();
  EXPECT_EQ(madt[0].rfind("SMPCHECK madt_cpus=" + std::to_string(cpus) + " ", 0), 0u) << madt[0];

  auto started = r.lines_with_prefix("SMPCHECK started=");
  ASSERT_EQ(started.size(), 1u) << r.describe();
  EXPECT_EQ(started[0].rfind("SMPCHECK started=" + std::to_string(cpus - 1) + " ", 0), 0u) << started[0];
  // APIC IDs 1..cpus-1, in whatever order the APs got their tickets.
  std::string ids = started[0].substr(started[0].find("apic_ids=") + 9);
  std::vector<int> got;
  std::stringstream ss(ids);
  for (std::string item; std::getline(ss, item, ',');) got.push_back(std::stoi(item));
  std::sort(got.begin(), got.end());
  std::vector<int> want;
  for (int i = 1; i < cpus; i++) want.push_back(i);
  EXPECT_EQ(got, want) << started[0];
}

INSTANTIATE_TEST_SUITE_P(Cpus, FirmwareSmpTest, ::testing::Values(1, 2, 4, 8));

}  // namespace
}  // namespace microvm::testing
