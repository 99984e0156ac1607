// Boots firmware/virtio_rng_driver against the default virtio-rng device over both
// transports: normal entropy requests, then chains a Linux driver never sends
// (device-readable buffer, buffers outside RAM or wrapping, descriptor loops, next
// index out of range). The device must reject them without writing anything, the VMM
// must survive, and a final request must still work.
#include <gtest/gtest.h>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

std::string field(const std::string& line, std::string_view key) {
  std::string k = " " + std::string(key) + "=";
  size_t at = line.find(k);
  if (at == std::string::npos) return "";
  at += k.size();
  return line.substr(at, line.find(' ', at) - at);
}

class FirmwareVirtioRngTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_P(FirmwareVirtioRngTest, EntropyAndHostileChains) {
  VmRunResult r =
      run_microvm({"run", "--kernel", firmware_path("virtio_rng_driver"), "--memory", "64M", "--transport", GetParam()},
                  VmRunOptions{.timeout = std::chrono::seconds(60)});
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("VIRTIORNG FAIL").size(), 0u) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("VIRTIORNG done failures=0").size(), 1u) << r.describe();

  auto init = r.lines_with_prefix("VIRTIORNG init");
  ASSERT_EQ(init.size(), 1u) << r.describe();
  EXPECT_EQ(field(init[0], "transport"), GetParam());
  EXPECT_EQ(field(init[0], "status"), "0xf") << init[0];  // ACKNOWLEDGE|DRIVER|DRIVER_OK|FEATURES_OK
  // virtio 1.2 §4.1.4.5 (MSI-X off) and §4.2.2: a used-buffer notification sets bit 0.
  EXPECT_EQ(r.lines_with_prefix("VIRTIORNG interrupt_status used=1").size(), 1u) << r.describe();
  for (const char* what : {"read 1", "read 2", "final read"}) {
    auto l = r.lines_with_prefix(std::string("VIRTIORNG ") + what + " ");
    ASSERT_EQ(l.size(), 1u) << what << "\n" << r.describe();
    EXPECT_EQ(field(l[0], "used_len"), "64") << l[0];
  }
  // Every hostile chain completed with nothing written (or the device asked for a reset).
  auto hostile = r.lines_with_prefix("VIRTIORNG hostile");
  EXPECT_EQ(hostile.size(), 5u) << r.describe();
  for (const auto& l : hostile) {
    EXPECT_TRUE(field(l, "used_len") == "0" || l.ends_with("needs_reset=1")) << l;
  }
}

INSTANTIATE_TEST_SUITE_P(Transports, FirmwareVirtioRngTest, ::testing::Values("mmio", "pci"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace microvm::testing
