#include "boot/zero_page.h"

#include <asm/bootparam.h>
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>

#include "boot/memory_map.h"
#include "kernel_images.h"
#include "microvm/guest_abi.h"

namespace microvm {
namespace {

// boot_params and setup_header are packed: copy a field out before gtest binds a reference to it.
template <class T>
T field(T v) {
  return v;
}

// e820 type values from the boot protocol (Documentation/arch/x86/zero-page.rst).
constexpr uint32_t E820_TYPE_RAM = 1, E820_TYPE_RESERVED = 2;

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

std::unique_ptr<GuestMemory> make_ram(uint64_t bytes) {
  auto layout = ram_layout(bytes);
  auto m = GuestMemory::create(layout, MemoryBacking::kAnonymous);
  EXPECT_TRUE(m) << m.error().what;
  return std::move(*m);
}

boot_params read_zero_page(const GuestMemory& mem) {
  auto bp = mem.read_obj<boot_params>(GuestAddress(MICROVM_ZERO_PAGE_ADDR));
  EXPECT_TRUE(bp);
  return *bp;
}

LoadedKernel elf_kernel() {
  LoadedKernel k;
  k.format = KernelFormat::kElf;
  k.entry = GuestAddress(16 * kMiB);
  k.image_start = GuestAddress(16 * kMiB);
  k.image_end = GuestAddress(16 * kMiB + 0x123456);
  return k;
}

TEST(MemoryMap, RamLayoutBelowGap) {
  auto l = ram_layout(256 * kMiB);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].base, GuestAddress(0));
  EXPECT_EQ(l[0].size, 256 * kMiB);
  l = ram_layout(3 * kGiB);  // exactly up to the gap
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].size, 3 * kGiB);
}

TEST(MemoryMap, RamLayoutSplitsAroundGap) {
  auto l = ram_layout(3 * kGiB + 512 * kMiB);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0].base, GuestAddress(0));
  EXPECT_EQ(l[0].size, uint64_t{MICROVM_MMIO_GAP_START});
  EXPECT_EQ(l[1].base, GuestAddress(MICROVM_HIGH_RAM_START));
  EXPECT_EQ(l[1].size, 512 * kMiB);
}

TEST(ZeroPage, E820For256MiB) {
  auto mem = make_ram(256 * kMiB);
  auto k = elf_kernel();
  BootParamsSpec spec{.kernel = &k, .cmdline = "console=ttyS0"};
  ASSERT_TRUE(write_boot_params(*mem, spec));
  auto bp = read_zero_page(*mem);
  ASSERT_EQ(field(bp.e820_entries), 3);
  EXPECT_EQ(field(bp.e820_table[0].addr), 0u);
  EXPECT_EQ(field(bp.e820_table[0].size), 0x9fc00u);
  EXPECT_EQ(field(bp.e820_table[0].type), E820_TYPE_RAM);
  EXPECT_EQ(field(bp.e820_table[1].addr), MICROVM_ACPI_ADDR);
  EXPECT_EQ(field(bp.e820_table[1].size), 0x100000 - MICROVM_ACPI_ADDR);
  EXPECT_EQ(field(bp.e820_table[1].type), E820_TYPE_RESERVED);
  EXPECT_EQ(field(bp.e820_table[2].addr), 0x100000u);
  EXPECT_EQ(field(bp.e820_table[2].size), 256 * kMiB - 0x100000);
  EXPECT_EQ(field(bp.e820_table[2].type), E820_TYPE_RAM);
}

TEST(ZeroPage, E820For3_5GiBSplitAroundGap) {
  // 3.5 GiB of address space; MAP_NORESERVE keeps this cheap since nothing is touched.
  auto mem = make_ram(3 * kGiB + 512 * kMiB);
  auto k = elf_kernel();
  BootParamsSpec spec{.kernel = &k, .cmdline = ""};
  ASSERT_TRUE(write_boot_params(*mem, spec));
  auto bp = read_zero_page(*mem);
  ASSERT_EQ(field(bp.e820_entries), 4);
  EXPECT_EQ(field(bp.e820_table[2].addr), 0x100000u);
  EXPECT_EQ(field(bp.e820_table[2].size), MICROVM_MMIO_GAP_START - 0x100000);
  EXPECT_EQ(field(bp.e820_table[2].type), E820_TYPE_RAM);
  EXPECT_EQ(field(bp.e820_table[3].addr), MICROVM_HIGH_RAM_START);
  EXPECT_EQ(field(bp.e820_table[3].size), 512 * kMiB);
  EXPECT_EQ(field(bp.e820_table[3].type), E820_TYPE_RAM);
  // Nothing in the e820 map claims the MMIO gap as RAM.
  for (int i = 0; i < bp.e820_entries; ++i) {
    const boot_e820_entry e = bp.e820_table[i];
    if (e.type != E820_TYPE_RAM) continue;
    EXPECT_TRUE(e.addr + e.size <= MICROVM_MMIO_GAP_START || e.addr >= MICROVM_HIGH_RAM_START) << i;
  }
}

TEST(ZeroPage, HeaderFieldsForElfKernel) {
  auto mem = make_ram(64 * kMiB);
  auto k = elf_kernel();
  GuestAddress rsdp(MICROVM_ACPI_ADDR);
  BootParamsSpec spec{.kernel = &k, .cmdline = "console=ttyS0 quiet", .acpi_rsdp = rsdp};
  auto at = write_boot_params(*mem, spec);
  ASSERT_TRUE(at) << at.error().what;
  EXPECT_EQ(*at, GuestAddress(MICROVM_ZERO_PAGE_ADDR));
  auto bp = read_zero_page(*mem);
  EXPECT_EQ(field(bp.hdr.boot_flag), 0xaa55);
  EXPECT_EQ(field(bp.hdr.header), 0x53726448u);  // "HdrS"
  EXPECT_EQ(field(bp.hdr.type_of_loader), 0xff);
  EXPECT_TRUE(field(bp.hdr.loadflags) & CAN_USE_HEAP);
  EXPECT_EQ(field(bp.acpi_rsdp_addr), MICROVM_ACPI_ADDR);
  EXPECT_EQ(field(bp.hdr.ramdisk_image), 0u);
  EXPECT_EQ(field(bp.hdr.ramdisk_size), 0u);
  EXPECT_EQ(field(bp.hdr.setup_data), 0u);  // no RNG seed given
}

TEST(ZeroPage, BzImageHeaderIsKept) {
  auto mem = make_ram(64 * kMiB);
  testing_images::BzImageSpec s;
  s.cmdline_size = 100;
  auto img = testing_images::make_bzimage(s);
  auto k = load_kernel(*mem, img);
  ASSERT_TRUE(k) << k.error().what;
  BootParamsSpec spec{.kernel = &*k, .cmdline = "x"};
  ASSERT_TRUE(write_boot_params(*mem, spec));
  auto bp = read_zero_page(*mem);
  EXPECT_EQ(field(bp.hdr.version), 0x020f);
  EXPECT_EQ(field(bp.hdr.init_size), s.init_size);
  EXPECT_EQ(field(bp.hdr.pref_address), s.pref_address);
  EXPECT_EQ(field(bp.hdr.cmdline_size), 100u);
  EXPECT_EQ(field(bp.hdr.type_of_loader), 0xff);
  EXPECT_TRUE(field(bp.hdr.loadflags) & LOADED_HIGH);
  EXPECT_TRUE(field(bp.hdr.loadflags) & CAN_USE_HEAP);
}

TEST(ZeroPage, CmdlineWrittenAndNulTerminated) {
  auto mem = make_ram(64 * kMiB);
  // Pre-fill the area so a missing terminator would be visible.
  std::array<std::byte, 64> junk;
  junk.fill(std::byte{'Z'});
  ASSERT_TRUE(mem->write(GuestAddress(MICROVM_CMDLINE_ADDR), junk));
  auto k = elf_kernel();
  const std::string cmdline = "console=ttyS0 root=/dev/vda";
  BootParamsSpec spec{.kernel = &k, .cmdline = cmdline};
  ASSERT_TRUE(write_boot_params(*mem, spec));
  auto bp = read_zero_page(*mem);
  EXPECT_EQ(field(bp.hdr.cmd_line_ptr), MICROVM_CMDLINE_ADDR);
  EXPECT_EQ(field(bp.ext_cmd_line_ptr), 0u);
  auto bytes = mem->translate(GuestAddress(MICROVM_CMDLINE_ADDR), cmdline.size() + 1);
  ASSERT_TRUE(bytes);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes->data()), cmdline.size()), cmdline);
  EXPECT_EQ((*bytes)[cmdline.size()], std::byte{0});
}

TEST(ZeroPage, CmdlineOverKernelLimitRefused) {
  auto mem = make_ram(64 * kMiB);
  auto k = elf_kernel();
  k.cmdline_limit = 16;
  BootParamsSpec spec{.kernel = &k, .cmdline = std::string(16, 'a')};
  EXPECT_TRUE(write_boot_params(*mem, spec));  // exactly the limit is fine
  spec.cmdline = std::string(17, 'a');
  auto r = write_boot_params(*mem, spec);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("at most 16"), std::string::npos) << r.error().what;
  // Even a kernel claiming a huge limit cannot overrun the 64 KiB cmdline area.
  k.cmdline_limit = 0xffffffff;
  spec.cmdline = std::string(MICROVM_CMDLINE_MAX, 'b');
  EXPECT_FALSE(write_boot_params(*mem, spec));
  spec.cmdline = std::string(MICROVM_CMDLINE_MAX - 1, 'b');
  EXPECT_TRUE(write_boot_params(*mem, spec));
}

TEST(ZeroPage, InitrdFieldsSplitAcross32Bits) {
  auto mem = make_ram(64 * kMiB);
  auto k = elf_kernel();
  BootParamsSpec spec{
      .kernel = &k, .cmdline = "", .initrd_addr = GuestAddress(0x1'2345'6000), .initrd_size = 0x2'0000'1000};
  ASSERT_TRUE(write_boot_params(*mem, spec));
  auto bp = read_zero_page(*mem);
  EXPECT_EQ(field(bp.hdr.ramdisk_image), 0x23456000u);
  EXPECT_EQ(field(bp.ext_ramdisk_image), 1u);
  EXPECT_EQ(field(bp.hdr.ramdisk_size), 0x1000u);
  EXPECT_EQ(field(bp.ext_ramdisk_size), 2u);
}

TEST(ZeroPage, InitrdPlacement) {
  auto mem = make_ram(64 * kMiB);
  auto k = elf_kernel();  // ends at 16 MiB + 0x123456
  const uint64_t size = 0x12345;
  auto at = place_initrd(*mem, k, size);
  ASSERT_TRUE(at) << at.error().what;
  EXPECT_EQ(at->raw() % 4096, 0u);
  EXPECT_GE(at->raw(), k.image_end.raw());
  EXPECT_LE(at->raw() + size, 64 * kMiB);
  EXPECT_GT(at->raw() + size, 64 * kMiB - 4096);  // as high as possible
  // Below the kernel's initrd_addr_max (the last byte it can address).
  k.initrd_addr_max = 32 * kMiB - 1;
  at = place_initrd(*mem, k, size);
  ASSERT_TRUE(at);
  EXPECT_LE(at->raw() + size, 32 * kMiB);
  EXPECT_EQ(at->raw(), (32 * kMiB - size) & ~uint64_t{4095});
}

TEST(ZeroPage, InitrdTooBigRefused) {
  auto mem = make_ram(64 * kMiB);
  auto k = elf_kernel();
  uint64_t bottom = (k.image_end.raw() + 4095) & ~uint64_t{4095};
  uint64_t room = 64 * kMiB - bottom;
  EXPECT_TRUE(place_initrd(*mem, k, room));  // exactly the room above the kernel
  auto r = place_initrd(*mem, k, room + 1);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("does not fit"), std::string::npos);
  EXPECT_FALSE(place_initrd(*mem, k, 128 * kMiB));
  EXPECT_FALSE(place_initrd(*mem, k, UINT64_MAX));
  // A low initrd_addr_max below the kernel leaves no room at all.
  k.initrd_addr_max = 8 * kMiB;
  EXPECT_FALSE(place_initrd(*mem, k, 4096));
}

TEST(ZeroPage, InitrdStaysInLowRamWithHighRegion) {
  auto mem = make_ram(3 * kGiB + 512 * kMiB);
  auto k = elf_kernel();
  k.initrd_addr_max = UINT64_MAX;  // XLF_CAN_BE_LOADED_ABOVE_4G
  auto at = place_initrd(*mem, k, 10 * kMiB);
  ASSERT_TRUE(at);
  EXPECT_LE(at->raw() + 10 * kMiB, MICROVM_MMIO_GAP_START);
  EXPECT_GT(at->raw(), 2 * kGiB);
}

TEST(ZeroPage, RngSeedSetupData) {
  auto mem = make_ram(64 * kMiB);
  auto k = elf_kernel();
  std::array<std::byte, 32> seed;
  for (size_t i = 0; i < seed.size(); ++i) seed[i] = std::byte(0xa0 + i);
  BootParamsSpec spec{.kernel = &k, .cmdline = "", .rng_seed = seed};
  ASSERT_TRUE(write_boot_params(*mem, spec));
  auto bp = read_zero_page(*mem);
  ASSERT_NE(field(bp.hdr.setup_data), 0u);
  // struct setup_data: u64 next, u32 type, u32 len, then the payload.
  auto next = mem->read_obj<uint64_t>(GuestAddress(bp.hdr.setup_data));
  auto type = mem->read_obj<uint32_t>(GuestAddress(bp.hdr.setup_data + 8));
  auto len = mem->read_obj<uint32_t>(GuestAddress(bp.hdr.setup_data + 12));
  ASSERT_TRUE(next && type && len);
  EXPECT_EQ(*type, uint32_t{SETUP_RNG_SEED});
  EXPECT_EQ(*len, 32u);
  EXPECT_EQ(*next, 0u);  // end of chain
  static_assert(sizeof(setup_data) == 16);
  std::array<std::byte, 32> got;
  ASSERT_TRUE(mem->read(GuestAddress(bp.hdr.setup_data + sizeof(setup_data)), got));
  EXPECT_EQ(got, seed);
  // The setup_data does not overlap the zero page or the command line.
  EXPECT_GE(field(bp.hdr.setup_data), MICROVM_ZERO_PAGE_ADDR + sizeof(boot_params));
  EXPECT_LE(field(bp.hdr.setup_data) + sizeof(setup_data) + 32, MICROVM_CMDLINE_ADDR);
}

}  // namespace
}  // namespace microvm
