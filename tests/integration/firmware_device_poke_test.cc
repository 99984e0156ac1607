// Runs firmware/device_poke: a seeded storm of odd guest accesses (every width, every
// offset, BAR sizing and relocation, DLAB/loopback UART states, bogus queue indexes and
// ring addresses, unassigned ports and MMIO) against every device microvm emulates,
// with a disk and the rng attached. The VMM must keep running (no crash, no exit)
// and the devices must still answer afterwards; the firmware then powers off.
#include <gtest/gtest.h>

#include <string>
#include <tuple>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

class FirmwareDevicePokeTest : public ::testing::TestWithParam<std::tuple<std::string, int>> {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_P(FirmwareDevicePokeTest, VmmSurvivesAndDevicesStillAnswer) {
  const auto& [transport, seed] = GetParam();
  TempDir dir;
  std::string disk = dir.write_file("disk.img", std::string(256 * 1024, '\x5a'));
  ASSERT_FALSE(disk.empty());
  VmRunResult r = run_microvm(
      {"run", "--kernel", firmware_path("device_poke"), "--memory", "64M", "--transport", transport, "--disk",
       disk + ",format=raw", "--cmdline", "poke.seed=" + std::to_string(seed) + " poke.rounds=3000"},
      VmRunOptions{.timeout = std::chrono::seconds(60)});
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("POKE storm over").size(), 1u) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("POKE done failures=0").size(), 1u) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("POKE FAIL").size(), 0u) << r.describe();
}

INSTANTIATE_TEST_SUITE_P(Seeds, FirmwareDevicePokeTest,
                         ::testing::Combine(::testing::Values("mmio", "pci"), ::testing::Values(1, 2, 3)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_seed" + std::to_string(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace microvm::testing
