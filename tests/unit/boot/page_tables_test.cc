#include "boot/page_tables.h"

#include <gtest/gtest.h>

namespace microvm {
namespace {

constexpr uint64_t kPresent = 1, kWritable = 2, kHuge = 0x80;
constexpr uint64_t kAddrMask = 0x000ffffffffff000ull;

class PageTablesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = GuestMemory::create_anonymous(16 << 20);
    ASSERT_TRUE(m);
    mem_ = std::move(*m);
    auto t = write_long_mode_tables(*mem_);
    ASSERT_TRUE(t) << t.error().what;
    tables_ = *t;
  }
  uint64_t q(uint64_t gpa) { return *mem_->read_obj<uint64_t>(GuestAddress(gpa)); }

  // Walks PML4 -> PDPT -> PD for a 2 MiB page; returns the physical address or ~0 if unmapped.
  uint64_t walk(uint64_t va) {
    uint64_t pml4e = q(tables_.pml4.raw() + ((va >> 39) & 511) * 8);
    if (!(pml4e & kPresent)) return ~0ull;
    uint64_t pdpte = q((pml4e & kAddrMask) + ((va >> 30) & 511) * 8);
    if (!(pdpte & kPresent) || (pdpte & kHuge)) return ~0ull;
    uint64_t pde = q((pdpte & kAddrMask) + ((va >> 21) & 511) * 8);
    if (!(pde & kPresent) || !(pde & kHuge)) return ~0ull;
    return (pde & 0x000fffffffe00000ull) | (va & 0x1fffff);
  }

  std::unique_ptr<GuestMemory> mem_;
  LongModeTables tables_{};
};

TEST_F(PageTablesTest, GdtHasFlatBootSegments) {
  EXPECT_EQ(tables_.gdt_limit, 4 * 8 - 1);
  uint64_t gdt = tables_.gdt.raw();
  EXPECT_EQ(q(gdt), 0u);  // null descriptor
  uint64_t code = q(gdt + kBootCodeSelector);
  uint64_t data = q(gdt + kBootDataSelector);
  // Code: present (bit 47), DPL 0, S=1, type execute/read (0xb incl. accessed), L=1 (bit 53), D=0 (bit 54), G=1.
  EXPECT_EQ(code, 0x00af9b000000ffffull);
  EXPECT_TRUE(code & (1ull << 47));
  EXPECT_TRUE(code & (1ull << 53));
  EXPECT_FALSE(code & (1ull << 54));
  EXPECT_EQ((code >> 40) & 0x8, 0x8u);  // executable
  // Data: present, type read/write, flat 4 GiB (limit 0xfffff with G=1).
  EXPECT_EQ(data, 0x00cf93000000ffffull);
  EXPECT_TRUE(data & (1ull << 47));
  EXPECT_EQ((data >> 40) & 0x8, 0u);  // not executable
  EXPECT_EQ(kBootCodeSelector, 0x10);
  EXPECT_EQ(kBootDataSelector, 0x18);
}

TEST_F(PageTablesTest, Pml4PointsAtPdptWithFourPageDirectories) {
  uint64_t pml4e = q(tables_.pml4.raw());
  EXPECT_EQ(pml4e & (kPresent | kWritable), kPresent | kWritable);
  uint64_t pdpt = pml4e & kAddrMask;
  EXPECT_EQ(q(tables_.pml4.raw() + 8), 0u);  // only the first 512 GiB are mapped
  for (uint64_t i = 0; i < 4; ++i) {
    uint64_t pdpte = q(pdpt + i * 8);
    EXPECT_EQ(pdpte & (kPresent | kWritable), kPresent | kWritable) << i;
    EXPECT_EQ(pdpte & kHuge, 0u) << i;  // points at a PD, not a 1 GiB page
  }
  EXPECT_EQ(q(pdpt + 4 * 8), 0u);  // nothing above 4 GiB
  // The tables themselves do not overlap the GDT or each other.
  EXPECT_NE(pdpt, tables_.pml4.raw());
  EXPECT_GE(tables_.pml4.raw(), tables_.gdt.raw() + tables_.gdt_limit + 1);
}

TEST_F(PageTablesTest, IdentityMapsLow4GiBWith2MiBPages) {
  for (uint64_t va : {0x0ull, 0x1234ull, 0x200000ull, 0x1000000ull + 0x200, 0x3fffffffull, 0x40000000ull, 0x7fe00000ull,
                      0xc0000000ull, 0xfee00000ull, 0xffffffffull}) {
    EXPECT_EQ(walk(va), va) << std::hex << va;
  }
  EXPECT_EQ(walk(0x100000000ull), ~0ull);  // 4 GiB is not mapped
  // Check every PD entry of the last directory: 2 MiB pages, writable, identity.
  uint64_t pdpt = q(tables_.pml4.raw()) & kAddrMask;
  uint64_t pd3 = q(pdpt + 3 * 8) & kAddrMask;
  for (uint64_t j = 0; j < 512; ++j) {
    uint64_t pde = q(pd3 + j * 8);
    ASSERT_EQ(pde & ~kAddrMask, kPresent | kWritable | kHuge) << j;
    ASSERT_EQ(pde & kAddrMask, (3ull << 30) + (j << 21)) << j;
  }
}

TEST(PageTables, TooLittleRamFails) {
  auto m = GuestMemory::create_anonymous(0x8000);  // ends before the PML4 at 0x9000
  ASSERT_TRUE(m);
  EXPECT_FALSE(write_long_mode_tables(**m));
}

}  // namespace
}  // namespace microvm
