// Boots firmware/virtio_blk_driver against `microvm run --transport mmio|pci --disk ...`:
// a deterministic guest driver that initializes the device, reads what the host put
// on the disk, writes and reads back a pattern, flushes, asks for the serial, sends
// requests a Linux driver never would (past the end, unknown type, buffers outside
// RAM, descriptor loops, short headers), and checks the device still works.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

constexpr size_t kDiskBytes = 1 << 20;
constexpr size_t kSector = 512;

std::string field(const std::string& line, std::string_view key) {
  std::string k = " " + std::string(key) + "=";
  size_t at = line.find(k);
  if (at == std::string::npos) return "";
  at += k.size();
  return line.substr(at, line.find(' ', at) - at);
}

std::string disk_contents() {
  std::string d(kDiskBytes, '\0');
  for (size_t i = 0; i < d.size(); i++) d[i] = static_cast<char>((i * 13 + 5) ^ (i >> 9));
  return d;
}

// What the firmware writes to sectors 2-3.
std::string guest_pattern() {
  std::string p(2 * kSector, '\0');
  for (uint32_t i = 0; i < p.size(); i++) p[i] = static_cast<char>(i * 7 + 3 + (i >> 9));
  return p;
}

// What the batch phase writes to sectors 16-31 (two sectors per request, 8 requests).
std::string batch_pattern() {
  std::string p;
  for (uint32_t r = 0; r < 8; r++) {
    for (uint32_t i = 0; i < 2 * kSector; i++) p += static_cast<char>(((r + 1) * 17) ^ (i * 5) ^ (i >> 9));
  }
  return p;
}
size_t batch_bytes_end() { return 32 * kSector; }

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

class FirmwareVirtioBlkTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    REQUIRE_KVM();
    disk_ = dir_.write_file("disk.img", disk_contents());
    ASSERT_FALSE(disk_.empty());
  }

  VmRunResult run(const std::string& disk_options) {
    return run_microvm({"run", "--kernel", firmware_path("virtio_blk_driver"), "--memory", "64M", "--transport",
                        GetParam(), "--no-rng", "--disk", disk_ + ",format=raw" + disk_options},
                       VmRunOptions{.timeout = std::chrono::seconds(60)});
  }

  std::string line_of(const VmRunResult& r, std::string_view what) {
    auto lines = r.lines_with_prefix("VIRTIOBLK " + std::string(what));
    EXPECT_EQ(lines.size(), 1u) << "want one 'VIRTIOBLK " << what << "' line\n" << r.describe();
    return lines.empty() ? "" : lines.front();
  }

  TempDir dir_;
  std::string disk_;
};

TEST_P(FirmwareVirtioBlkTest, DriverRoundTripAndHostileRequests) {
  VmRunResult r = run(",serial=fwdisk1");
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("VIRTIOBLK FAIL").size(), 0u) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("VIRTIOBLK done failures=0").size(), 1u) << r.describe();

  auto inits = r.lines_with_prefix("VIRTIOBLK init ");  // the hostile tests re-initialize
  ASSERT_FALSE(inits.empty()) << r.describe();
  std::string init = inits.front();
  EXPECT_EQ(field(init, "transport"), GetParam()) << init;
  EXPECT_EQ(field(init, "status"), "0xf") << init;
  EXPECT_EQ(line_of(r, "capacity="), "VIRTIOBLK capacity=" + std::to_string(kDiskBytes / kSector));
  // The guest saw exactly the bytes the host wrote.
  std::string original = disk_contents();
  uint64_t initial = std::strtoull(field(line_of(r, "initial"), "fnv1a").c_str(), nullptr, 0);
  EXPECT_EQ(initial, fnv1a32(std::string_view(original).substr(0, 2 * kSector)));
  // With MSI-X off (virtio-pci) and on virtio-mmio, a used-buffer notification sets
  // ISR/InterruptStatus bit 0 (virtio 1.2 §4.1.4.5, §4.2.2).
  EXPECT_EQ(line_of(r, "interrupt_status"), "VIRTIOBLK interrupt_status used=1");
  EXPECT_EQ(line_of(r, "get_id"), "VIRTIOBLK get_id status=0 id=fwdisk1");
  // Broken chains: completed with an error (or nothing written), or NEEDS_RESET.
  auto hostile = r.lines_with_prefix("VIRTIOBLK hostile");
  EXPECT_EQ(hostile.size(), 16u) << r.describe();
  for (const auto& l : hostile) {
    if (l.find(" used_len=") == std::string::npos) continue;
    EXPECT_TRUE(field(l, "status") != "0x0" || field(l, "used_len") == "0") << l;
  }
  // Queue-level breakage must never make the device consume garbage.
  EXPECT_NE(line_of(r, "hostile avail_idx_jump"), "VIRTIOBLK hostile avail_idx_jump outcome=used");
  EXPECT_NE(line_of(r, "hostile rings_outside_ram"), "VIRTIOBLK hostile rings_outside_ram outcome=used");

  // Eight requests in flight at once, scattered over two data descriptors each, and a
  // read through an indirect table.
  EXPECT_EQ(line_of(r, "batch writes="), "VIRTIOBLK batch writes=8 errors=0 mismatched=0");
  EXPECT_EQ(line_of(r, "batch reads="), "VIRTIOBLK batch reads=8 errors=0 mismatched=0");
  EXPECT_EQ(line_of(r, "indirect read"), "VIRTIOBLK indirect read status=0 data=ok");

  // The host sees what the guest wrote, and nothing else changed.
  std::string after = read_all(disk_);
  ASSERT_EQ(after.size(), kDiskBytes);
  EXPECT_TRUE(after.substr(2 * kSector, 2 * kSector) == guest_pattern())
      << "sectors 2-3 do not hold the guest's pattern";
  EXPECT_TRUE(after.substr(0, 2 * kSector) == original.substr(0, 2 * kSector));
  EXPECT_TRUE(after.substr(4 * kSector, 12 * kSector) == original.substr(4 * kSector, 12 * kSector))
      << "sectors 4-15 changed";
  EXPECT_TRUE(after.substr(batch_bytes_end()) == original.substr(batch_bytes_end()))
      << "bytes beyond sector 31 changed";
  EXPECT_TRUE(after.substr(16 * kSector, 16 * kSector) == batch_pattern())
      << "sectors 16-31 do not hold the batch pattern";
}

TEST_P(FirmwareVirtioBlkTest, ReadOnlyDiskRejectsWrites) {
  VmRunResult r = run(",readonly=on");
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("VIRTIOBLK FAIL").size(), 0u) << r.describe();
  EXPECT_EQ(line_of(r, "write sector=2"), "VIRTIOBLK write sector=2 count=2 status=1");
  EXPECT_EQ(line_of(r, "batch writes="), "VIRTIOBLK batch writes=8 errors=8 mismatched=0");
  EXPECT_TRUE(read_all(disk_) == disk_contents()) << "a read-only disk was modified";
}

INSTANTIATE_TEST_SUITE_P(Transports, FirmwareVirtioBlkTest, ::testing::Values("mmio", "pci"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace microvm::testing
