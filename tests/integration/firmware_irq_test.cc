// Boots firmware/irq_check: virtio interrupts end to end, as a guest OS receives them.
// virtio-mmio: the device's line, routed by the guest through the IOAPIC (vector 0x41).
// virtio-pci: the queue bound to MSI-X entry 0 (vector 0x42). Each of two requests must
// interrupt the BSP on exactly that vector (a watchdog timer catches silence).
#include <gtest/gtest.h>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

class FirmwareIrqTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_P(FirmwareIrqTest, UsedBufferInterruptReachesTheGuest) {
  VmRunResult r =
      run_microvm({"run", "--kernel", firmware_path("irq_check"), "--memory", "64M", "--transport", GetParam()},
                  VmRunOptions{.timeout = std::chrono::seconds(30)});
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("IRQCHECK FAIL").size(), 0u) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("IRQCHECK done failures=0").size(), 1u) << r.describe();
  std::string vector = GetParam() == "mmio" ? "0x41" : "0x42";
  for (const char* n : {"1", "2"}) {
    auto l = r.lines_with_prefix(std::string("IRQCHECK interrupt ") + n + " vector=" + vector + " ");
    EXPECT_EQ(l.size(), 1u) << "interrupt " << n << " not on vector " << vector << "\n" << r.describe();
  }
}

INSTANTIATE_TEST_SUITE_P(Transports, FirmwareIrqTest, ::testing::Values("mmio", "pci"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace microvm::testing
