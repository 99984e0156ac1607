#include "boot/acpi/acpi_tables.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "boot/acpi/aml.h"
#include "microvm/guest_abi.h"

namespace microvm {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

// A table read back from guest memory.
struct Table {
  uint64_t addr = 0;
  std::vector<uint8_t> bytes;
  std::string signature() const { return std::string(bytes.begin(), bytes.begin() + 4); }
  uint64_t u(size_t off, int n) const {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t{bytes.at(off + i)} << (8 * i);
    return v;
  }
};

uint8_t sum(const std::vector<uint8_t>& b, size_t len) {
  uint8_t s = 0;
  for (size_t i = 0; i < len; ++i) s = static_cast<uint8_t>(s + b[i]);
  return s;
}

std::vector<uint8_t> read_bytes(const GuestMemory& mem, uint64_t addr, size_t len) {
  std::vector<uint8_t> out(len);
  auto r = mem.read(GuestAddress(addr), std::as_writable_bytes(std::span(out)));
  EXPECT_TRUE(r) << "reading " << len << " bytes at " << addr;
  return out;
}

Table read_table(const GuestMemory& mem, uint64_t addr) {
  auto hdr = read_bytes(mem, addr, 36);
  uint32_t len;
  std::memcpy(&len, &hdr[4], 4);
  EXPECT_GE(len, 36u);
  EXPECT_LE(addr + len, 0x100000u);  // inside the reserved BIOS area
  return Table{addr, read_bytes(mem, addr, len)};
}

bool contains(const std::vector<uint8_t>& hay, const std::vector<uint8_t>& needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

struct Tables {
  std::vector<uint8_t> rsdp;
  Table xsdt, fadt, madt, dsdt;
};

class AcpiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = GuestMemory::create_anonymous(16 * kMiB);
    ASSERT_TRUE(m);
    mem_ = std::move(*m);
  }
  Tables build(const AcpiSpec& spec) {
    Tables t;
    auto rsdp = write_acpi_tables(*mem_, spec);
    EXPECT_TRUE(rsdp) << rsdp.error().what;
    if (!rsdp) return t;
    EXPECT_EQ(*rsdp, GuestAddress(MICROVM_ACPI_ADDR));
    t.rsdp = read_bytes(*mem_, rsdp->raw(), 36);
    uint64_t xsdt_addr;
    std::memcpy(&xsdt_addr, &t.rsdp[24], 8);
    t.xsdt = read_table(*mem_, xsdt_addr);
    t.fadt = read_table(*mem_, t.xsdt.u(36, 8));
    t.madt = read_table(*mem_, t.xsdt.u(44, 8));
    t.dsdt = read_table(*mem_, t.fadt.u(140, 8));
    return t;
  }
  std::unique_ptr<GuestMemory> mem_;
};

TEST_F(AcpiTest, RsdpSignatureAndBothChecksums) {
  auto t = build({.num_cpus = 2});
  EXPECT_EQ(std::string(t.rsdp.begin(), t.rsdp.begin() + 8), "RSD PTR ");
  EXPECT_EQ(t.rsdp[15], 2);       // ACPI 2.0+ revision
  EXPECT_EQ(sum(t.rsdp, 20), 0);  // ACPI 1.0 checksum over the first 20 bytes
  EXPECT_EQ(sum(t.rsdp, 36), 0);  // extended checksum over all 36
  uint32_t len;
  std::memcpy(&len, &t.rsdp[20], 4);
  EXPECT_EQ(len, 36u);
  // The RSDP is 16-byte aligned inside 0xe0000-0xfffff, where Linux scans for it.
  EXPECT_EQ(MICROVM_ACPI_ADDR % 16, 0u);
}

TEST_F(AcpiTest, EveryTableChecksumsToZero) {
  for (uint32_t cpus : {1u, 4u, 254u}) {
    for (bool pci : {false, true}) {
      AcpiSpec spec{.num_cpus = cpus};
      if (pci) spec.pci = PciHostWindow{0xc0000000, 0x10000000};
      auto t = build(spec);
      for (const Table* tab : {&t.xsdt, &t.fadt, &t.madt, &t.dsdt}) {
        EXPECT_EQ(sum(tab->bytes, tab->bytes.size()), 0) << tab->signature() << " cpus=" << cpus;
      }
    }
  }
}

TEST_F(AcpiTest, XsdtPointsAtFadtAndMadt) {
  auto t = build({.num_cpus = 1});
  EXPECT_EQ(t.xsdt.signature(), "XSDT");
  EXPECT_EQ(t.xsdt.bytes.size(), 36u + 2 * 8);
  EXPECT_EQ(t.fadt.signature(), "FACP");
  EXPECT_EQ(t.madt.signature(), "APIC");
  EXPECT_EQ(t.dsdt.signature(), "DSDT");
  // Tables do not overlap each other or the RSDP.
  std::vector<std::pair<uint64_t, uint64_t>> ranges = {{MICROVM_ACPI_ADDR, MICROVM_ACPI_ADDR + 36}};
  for (const Table* tab : {&t.xsdt, &t.fadt, &t.madt, &t.dsdt})
    ranges.push_back({tab->addr, tab->addr + tab->bytes.size()});
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) EXPECT_LE(ranges[i - 1].second, ranges[i].first);
}

TEST_F(AcpiTest, MadtListsCpusAndOneIoapic) {
  for (uint32_t cpus : {1u, 3u, 8u}) {
    auto t = build({.num_cpus = cpus});
    const Table& m = t.madt;
    EXPECT_EQ(m.u(36, 4), MICROVM_LAPIC_ADDR);
    size_t off = 44;
    uint32_t lapics = 0, ioapics = 0;
    while (off + 2 <= m.bytes.size()) {
      uint8_t type = m.bytes[off], len = m.bytes[off + 1];
      ASSERT_GE(len, 2);
      ASSERT_LE(off + len, m.bytes.size());
      if (type == 0) {
        EXPECT_EQ(len, 8);
        EXPECT_EQ(m.bytes[off + 3], lapics) << "APIC IDs are 0..N-1 in order";
        EXPECT_EQ(m.bytes[off + 2], lapics) << "processor UID";
        EXPECT_EQ(m.u(off + 4, 4) & 1, 1u) << "enabled";
        ++lapics;
      } else if (type == 1) {
        EXPECT_EQ(len, 12);
        EXPECT_EQ(m.u(off + 4, 4), MICROVM_IOAPIC_ADDR);
        EXPECT_EQ(m.u(off + 8, 4), 0u);     // GSI base
        EXPECT_GE(m.bytes[off + 2], cpus);  // IOAPIC ID does not collide with a CPU's
        ++ioapics;
      }
      off += len;
    }
    EXPECT_EQ(off, m.bytes.size());
    EXPECT_EQ(lapics, cpus);
    EXPECT_EQ(ioapics, 1u);
  }
}

TEST_F(AcpiTest, CpuCountLimits) {
  EXPECT_FALSE(write_acpi_tables(*mem_, {.num_cpus = 0}));
  EXPECT_FALSE(write_acpi_tables(*mem_, {.num_cpus = 255}));
  EXPECT_TRUE(write_acpi_tables(*mem_, {.num_cpus = 254}));
}

TEST_F(AcpiTest, FadtFields) {
  auto t = build({.num_cpus = 1});
  const Table& f = t.fadt;
  EXPECT_EQ(f.bytes.size(), 276u);
  EXPECT_EQ(f.bytes[8], 6);             // revision
  EXPECT_EQ(f.u(40, 4), t.dsdt.addr);   // DSDT
  EXPECT_EQ(f.u(140, 8), t.dsdt.addr);  // X_DSDT
  EXPECT_EQ(f.u(56, 4), uint64_t{MICROVM_PORT_ACPI_PM1A_EVT});
  EXPECT_EQ(f.u(64, 4), uint64_t{MICROVM_PORT_ACPI_PM1A_CNT});
  EXPECT_EQ(f.bytes[88], 4);  // PM1_EVT_LEN
  EXPECT_EQ(f.bytes[89], 2);  // PM1_CNT_LEN
  EXPECT_EQ(f.u(48, 4), 0u);  // SMI_CMD 0: always in ACPI mode
  // Not hardware-reduced (flag bit 20), reset register supported (bit 10).
  EXPECT_EQ(f.u(112, 4) & (1u << 20), 0u);
  EXPECT_NE(f.u(112, 4) & (1u << 10), 0u);
  // PWR_BUTTON (bit 4) clear: the power button is the fixed-feature one in PM1; SCI on IRQ 9.
  EXPECT_EQ(f.u(112, 4) & (1u << 4), 0u);
  EXPECT_EQ(f.u(46, 2), uint64_t{MICROVM_ACPI_SCI_IRQ});
  // RESET_REG: system I/O, 8 bits, at the reset port; RESET_VALUE.
  EXPECT_EQ(f.bytes[116], 1);
  EXPECT_EQ(f.bytes[117], 8);
  EXPECT_EQ(f.u(120, 8), uint64_t{MICROVM_PORT_ACPI_RESET});
  EXPECT_EQ(f.bytes[128], MICROVM_ACPI_RESET_VALUE);
  // X_PM1a_EVT_BLK and X_PM1a_CNT_BLK match the 32-bit fields.
  EXPECT_EQ(f.bytes[148], 1);
  EXPECT_EQ(f.bytes[149], 32);
  EXPECT_EQ(f.u(152, 8), uint64_t{MICROVM_PORT_ACPI_PM1A_EVT});
  EXPECT_EQ(f.bytes[172], 1);
  EXPECT_EQ(f.bytes[173], 16);
  EXPECT_EQ(f.bytes[175], 2);  // word access
  EXPECT_EQ(f.u(176, 8), uint64_t{MICROVM_PORT_ACPI_PM1A_CNT});
  // Sleep control/status registers.
  EXPECT_EQ(f.u(248, 8), uint64_t{MICROVM_PORT_ACPI_SLEEP_CONTROL});
  EXPECT_EQ(f.u(260, 8), uint64_t{MICROVM_PORT_ACPI_SLEEP_STATUS});
}

TEST_F(AcpiTest, DsdtHasS5Package) {
  auto t = build({.num_cpus = 1});
  // Name(_S5_, Package(4) {SLP_TYP, 0, 0, 0}): NameOp, "_S5_", PackageOp, PkgLength, NumElements.
  auto s5 = aml::name(
      "_S5_", aml::package({aml::integer(MICROVM_ACPI_S5_SLP_TYP), aml::integer(0), aml::integer(0), aml::integer(0)}));
  EXPECT_TRUE(contains(t.dsdt.bytes, s5));
  const std::vector<uint8_t> expect = {0x08, '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, MICROVM_ACPI_S5_SLP_TYP,
                                       0,    0,   0};
  EXPECT_TRUE(contains(t.dsdt.bytes, expect));
  EXPECT_FALSE(contains(t.dsdt.bytes, {'P', 'C', 'I', '0'}));  // no PCI window, no host bridge
}

TEST_F(AcpiTest, DsdtDescribesPvpanicOnlyWhenAsked) {
  auto without = build({.num_cpus = 1});
  EXPECT_FALSE(contains(without.dsdt.bytes, {'Q', 'E', 'M', 'U', '0', '0', '0', '1'}));
  auto t = build({.num_cpus = 1, .pvpanic = true});
  const auto& d = t.dsdt.bytes;
  EXPECT_TRUE(contains(d, {'P', 'E', 'V', 'T'}));
  // Name(_HID, "QEMU0001"): NameOp, "_HID", StringPrefix, the string, NUL.
  EXPECT_TRUE(contains(d, {0x08, '_', 'H', 'I', 'D', 0x0d, 'Q', 'E', 'M', 'U', '0', '0', '0', '1', 0}));
  // IO(Decode16, 0x505, 0x505, 1, 1).
  EXPECT_TRUE(contains(d, {0x47, 0x01, 0x05, 0x05, 0x05, 0x05, 0x01, 0x01}));
}

TEST_F(AcpiTest, DsdtDescribesPciHostBridge) {
  auto t = build({.num_cpus = 1, .pci = PciHostWindow{MICROVM_PCI_MMIO_BASE, MICROVM_PCI_MMIO_SIZE}});
  const auto& d = t.dsdt.bytes;
  EXPECT_TRUE(contains(d, {'P', 'C', 'I', '0'}));
  EXPECT_TRUE(contains(d, {'_', 'S', 'B', '_'}));
  // Name(_HID, EisaId("PNP0A03")).
  EXPECT_TRUE(contains(d, {0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03}));
  // The DWord memory window: min and max of the BAR window, little-endian.
  uint32_t lo = MICROVM_PCI_MMIO_BASE, hi = MICROVM_PCI_MMIO_BASE + MICROVM_PCI_MMIO_SIZE - 1;
  std::vector<uint8_t> range;
  for (uint32_t v : {lo, hi})
    for (int i = 0; i < 4; ++i) range.push_back(static_cast<uint8_t>(v >> (8 * i)));
  EXPECT_TRUE(contains(d, range));
  // Device(PCI0): ExtOpPrefix 0x5b, DeviceOp 0x82, PkgLength, then the name.
  bool device_op = false;
  for (size_t i = 0; i + 7 < d.size(); ++i) {
    if (d[i] != 0x5b || d[i + 1] != 0x82) continue;
    size_t len_bytes = 1 + (d[i + 2] >> 6);
    if (i + 2 + len_bytes + 4 <= d.size() && std::memcmp(&d[i + 2 + len_bytes], "PCI0", 4) == 0) device_op = true;
  }
  EXPECT_TRUE(device_op);
}

}  // namespace
}  // namespace microvm
