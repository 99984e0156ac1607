// Boots the freestanding boot_check / bzimage_check firmware (firmware/) on /dev/kvm
// and checks what the guest saw: e820, command line, initrd bytes, MADT CPU count,
// setup_data RNG seed, the KVM CPUID leaves, entry CPU state. The firmware itself
// reports every inconsistency as "BOOTCHECK FAIL ..."; these tests add the facts
// only the host knows (what was asked for on the command line).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <random>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

constexpr auto kFirmwareTimeout = std::chrono::seconds(30);

// The value after "key=" in a BOOTCHECK line, up to the next space.
std::string field(const std::string& line, std::string_view key) {
  std::string k = " " + std::string(key) + "=";
  size_t at = line.find(k);
  if (at == std::string::npos) return "";
  at += k.size();
  return line.substr(at, line.find(' ', at) - at);
}

uint64_t number(const std::string& s) { return s.empty() ? ~0ull : std::strtoull(s.c_str(), nullptr, 0); }

// The single line starting with "BOOTCHECK <what>", or "" (and a test failure).
std::string line_of(const VmRunResult& r, std::string_view what) {
  auto lines = r.lines_with_prefix("BOOTCHECK " + std::string(what));
  EXPECT_EQ(lines.size(), 1u) << "want exactly one 'BOOTCHECK " << what << "' line\n" << r.describe();
  return lines.empty() ? "" : lines.front();
}

VmRunResult boot(const std::string& firmware, std::vector<std::string> extra) {
  std::vector<std::string> args = {"run", "--kernel", firmware_path(firmware)};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_microvm(args, VmRunOptions{.timeout = kFirmwareTimeout});
}

// Exit code 0 (guest powered off), the firmware ran to the end, and found nothing wrong.
void expect_clean(const VmRunResult& r) {
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("BOOTCHECK FAIL").size(), 0u) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("BOOTCHECK done failures=0").size(), 1u) << r.describe();
}

class FirmwareBootTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_F(FirmwareBootTest, OneCpuSmallMemory) {
  VmRunResult r = boot("boot_check", {"--cpus", "1", "--memory", "64M", "--cmdline", "bootcheck hello=world x"});
  ASSERT_NO_FATAL_FAILURE(expect_clean(r));
  EXPECT_EQ(line_of(r, "variant="), "BOOTCHECK variant=elf");
  EXPECT_EQ(line_of(r, "cpus=").rfind("BOOTCHECK cpus=1 ", 0), 0u) << r.describe();
  EXPECT_EQ(line_of(r, "cpu_state"), "BOOTCHECK cpu_state cs=0x10 ds=0x18 ss=0x18 if=0 long_mode=1");

  // All RAM the e820 reports was asked for, and at most the legacy hole is missing.
  std::string e820 = line_of(r, "e820 n=");
  uint64_t ram = number(field(e820, "ram"));
  EXPECT_LE(ram, 64ull << 20) << e820;
  EXPECT_GE(ram, (64ull << 20) - (1ull << 20)) << e820;
  EXPECT_EQ(field(e820, "ram_ranges"), "2") << e820;  // below 640K and from 1 MiB

  std::string cmdline = line_of(r, "cmdline=");
  EXPECT_NE(cmdline.find("bootcheck hello=world x"), std::string::npos) << cmdline;
  EXPECT_EQ(line_of(r, "initrd"), "BOOTCHECK initrd none");
  EXPECT_EQ(line_of(r, "rng_seed="), "BOOTCHECK rng_seed=present len=32 nonzero=1");
  EXPECT_EQ(line_of(r, "hv_leaf").rfind("BOOTCHECK hv_leaf 0x40000000 sig=KVMKVMKVM eax=", 0), 0u);
  EXPECT_EQ(line_of(r, "lowmem_ok").empty(), false);
  // The FADT names the ABI's power-off registers (the firmware checks the model-specific
  // details; see checks.c).
  std::string fadt = line_of(r, "fadt");
  EXPECT_EQ(field(fadt, "sleep_control"), "0x600") << fadt;
  if (field(fadt, "hw_reduced") == "0") {
    EXPECT_EQ(field(fadt, "pm1a_cnt"), "0x614") << fadt;
  }
  EXPECT_EQ(field(line_of(r, "dsdt"), "s5"), "1");
  EXPECT_LT(r.seconds, 5.0) << "a firmware boot should take well under a second";
}

TEST_F(FirmwareBootTest, ThreeCpusInMadt) {
  VmRunResult r = boot("boot_check", {"--cpus", "3", "--memory", "128M"});
  ASSERT_NO_FATAL_FAILURE(expect_clean(r));
  std::string cpus = line_of(r, "cpus=");
  EXPECT_EQ(cpus.rfind("BOOTCHECK cpus=3 ", 0), 0u) << cpus;
  EXPECT_EQ(field(cpus, "ioapics"), "1") << cpus;
}

TEST_F(FirmwareBootTest, LargeMemorySplitsAroundMmioGap) {
  VmRunResult r = boot("boot_check", {"--cpus", "1", "--memory", "3584M"});
  ASSERT_NO_FATAL_FAILURE(expect_clean(r));
  std::string e820 = line_of(r, "e820 n=");
  uint64_t ram = number(field(e820, "ram"));
  EXPECT_LE(ram, 3584ull << 20) << e820;
  EXPECT_GE(ram, (3584ull << 20) - (1ull << 20)) << e820;
  EXPECT_EQ(field(e820, "ram_ranges"), "3") << e820;
  // 3 GiB below the gap (the firmware checks none of it is in the gap), 512 MiB above 4 GiB.
  bool high = false;
  uint64_t below_gap_end = 0;
  for (const auto& l : r.lines_with_prefix("BOOTCHECK e820 entry")) {
    if (field(l, "type") != "1") continue;
    uint64_t addr = number(field(l, "addr")), size = number(field(l, "size"));
    if (addr == 0x100000000ull) {
      high = true;
      EXPECT_EQ(size, 512ull << 20) << l;
    } else if (addr < 0x100000000ull) {
      below_gap_end = std::max(below_gap_end, addr + size);
    }
  }
  EXPECT_TRUE(high) << "no RAM range at 4 GiB\n" << r.describe();
  EXPECT_EQ(below_gap_end, 0xc0000000ull) << r.describe();
  EXPECT_EQ(line_of(r, "highmem_ok").empty(), false) << "RAM above 4 GiB was not usable";
}

// --hugepages either boots (when the host has enough free 2 MiB pages) or fails
// cleanly with exit code 1 and a message that says how to grow the pool.
TEST_F(FirmwareBootTest, HugepagesBootOrExplain) {
  long free_pages = 0;
  {
    std::ifstream meminfo("/proc/meminfo");
    for (std::string line; std::getline(meminfo, line);) {
      if (line.starts_with("HugePages_Free:")) free_pages = std::strtol(line.c_str() + 15, nullptr, 10);
    }
  }
  VmRunResult r = boot("boot_check", {"--memory", "64M", "--hugepages"});
  if (free_pages >= 32) {
    ASSERT_NO_FATAL_FAILURE(expect_clean(r));
  } else {
    EXPECT_EQ(r.exit_code, 1) << "only " << free_pages << " free huge pages\n" << r.describe();
    EXPECT_NE(r.err.find("huge"), std::string::npos) << r.describe();
    EXPECT_TRUE(r.out.empty()) << "the guest must not start without its memory\n" << r.describe();
  }
}

// Linux powers off through PM1a_CNT (fixed-hardware ACPI), firmware through the sleep
// control register; both must end the VM with exit code 0.
TEST_F(FirmwareBootTest, PowerOffThroughPm1aControl) {
  VmRunResult r = boot("boot_check", {"--memory", "64M", "--cmdline", "bootcheck.poweroff=pm1a"});
  ASSERT_NO_FATAL_FAILURE(expect_clean(r));
  EXPECT_EQ(line_of(r, "poweroff="), "BOOTCHECK poweroff=pm1a");
  EXPECT_EQ(r.out.find("did not stop the VM"), std::string::npos) << r.describe();
}

// With --transport mmio, every device is announced on the command line and answers there.
TEST_F(FirmwareBootTest, VirtioMmioDevicesAreAnnouncedAndLive) {
  TempDir dir;
  std::string disk = dir.write_file("disk.img", std::string(64 * 1024, '\0'));
  ASSERT_FALSE(disk.empty());
  VmRunResult r = boot("boot_check", {"--memory", "64M", "--transport", "mmio", "--disk", disk + ",format=raw"});
  ASSERT_NO_FATAL_FAILURE(expect_clean(r));
  EXPECT_EQ(line_of(r, "virtio_mmio devices="), "BOOTCHECK virtio_mmio devices=2");  // blk + rng
  std::vector<std::string> ids;
  for (const auto& l : r.lines_with_prefix("BOOTCHECK virtio_mmio addr=")) ids.push_back(field(l, "device_id"));
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"2", "4"})) << r.describe();
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(gen());
  return s;
}

TEST_F(FirmwareBootTest, InitrdBytesArriveIntact) {
  TempDir dir;
  // An odd size, so a loader that rounds or truncates shows up; small, because the
  // firmware hashes it in emulated guest kernel mode.
  std::string bytes = random_bytes(5003, 42);
  std::string path = dir.write_file("initrd.bin", bytes);
  ASSERT_FALSE(path.empty());
  VmRunResult r = boot("boot_check", {"--memory", "96M", "--initrd", path});
  ASSERT_NO_FATAL_FAILURE(expect_clean(r));
  std::string initrd = line_of(r, "initrd");
  EXPECT_EQ(field(initrd, "size"), "5003") << initrd;
  uint32_t sum = 0;
  for (unsigned char c : bytes) sum += c;
  EXPECT_EQ(number(field(initrd, "sum")), sum) << initrd;
  EXPECT_EQ(number(field(initrd, "fnv1a")), fnv1a32(bytes)) << initrd;
}

TEST_F(FirmwareBootTest, KvmclockCanBeMasked) {
  VmRunResult base = boot("boot_check", {"--memory", "64M"});
  ASSERT_NO_FATAL_FAILURE(expect_clean(base));
  VmRunResult masked = boot("boot_check", {"--memory", "64M", "--cpu", "host,-kvmclock"});
  ASSERT_NO_FATAL_FAILURE(expect_clean(masked));
  uint64_t before = number(field(line_of(base, "0x40000001"), "eax"));
  uint64_t after = number(field(line_of(masked, "0x40000001"), "eax"));
  ASSERT_NE(before, ~0ull);
  ASSERT_NE(after, ~0ull);
  // "kvmclock" names both kvmclock MSR sets, KVM_FEATURE_CLOCKSOURCE (bit 0) and
  // KVM_FEATURE_CLOCKSOURCE2 (bit 3), as in QEMU. KVM_FEATURE_CLOCKSOURCE_STABLE_BIT
  // (bit 24) only qualifies kvmclock, so a guest ignores it once both are gone.
  constexpr uint64_t kClocksource = 1u << 0, kClocksource2 = 1u << 3;
  // Without the bits in the default set, the masked run would prove nothing.
  ASSERT_TRUE(before & kClocksource2) << std::hex << "default 0x40000001 eax=0x" << before;
  EXPECT_EQ(after & (kClocksource | kClocksource2), 0u) << std::hex << "masked eax=0x" << after;
  // Masking kvmclock leaves the other PV features alone.
  constexpr uint64_t kClockBits = kClocksource | kClocksource2;
  EXPECT_EQ(after & ~kClockBits, before & ~kClockBits) << std::hex << before << " -> " << after;
}

TEST_F(FirmwareBootTest, BzImageBootsThroughSixtyFourBitEntry) {
  TempDir dir;
  std::string bytes = random_bytes(777, 7);
  std::string path = dir.write_file("initrd.bin", bytes);
  ASSERT_FALSE(path.empty());
  VmRunResult r =
      boot("bzimage_check", {"--cpus", "2", "--memory", "256M", "--cmdline", "from-bzimage=1", "--initrd", path});
  ASSERT_NO_FATAL_FAILURE(expect_clean(r));
  EXPECT_EQ(line_of(r, "variant="), "BOOTCHECK variant=bzimage");
  std::string bz = line_of(r, "bzimage");
  EXPECT_EQ(field(bz, "version"), "0x20f") << bz;
  EXPECT_EQ(field(bz, "setup_sects"), "3") << bz;
  EXPECT_EQ(line_of(r, "cpus=").rfind("BOOTCHECK cpus=2 ", 0), 0u);
  EXPECT_NE(line_of(r, "cmdline=").find("from-bzimage=1"), std::string::npos);
  std::string initrd = line_of(r, "initrd");
  EXPECT_EQ(number(field(initrd, "fnv1a")), fnv1a32(bytes)) << initrd;
}

}  // namespace
}  // namespace microvm::testing
