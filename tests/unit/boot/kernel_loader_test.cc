#include "boot/kernel_loader.h"

#include <gtest/gtest.h>

#include <string>

#include "kernel_images.h"
#include "microvm/guest_abi.h"

namespace microvm {
namespace {

// boot_params and setup_header are packed: copy a field out before gtest binds a reference to it.
template <class T>
T field(T v) {
  return v;
}

using namespace testing_images;

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kRam = 64 * kMiB;

class KernelLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = GuestMemory::create_anonymous(kRam);
    ASSERT_TRUE(m) << m.error().what;
    mem_ = std::move(*m);
  }
  // Expects loading to fail with a message containing `needle`, and nothing written to RAM.
  void expect_elf_error(const std::vector<std::byte>& img, const std::string& needle) {
    auto r = load_elf_kernel(*mem_, img);
    ASSERT_FALSE(r) << "expected failure: " << needle;
    EXPECT_NE(r.error().what.find(needle), std::string::npos) << r.error().what;
    auto k = load_kernel(*mem_, img);  // the same through format detection
    ASSERT_FALSE(k);
    EXPECT_EQ(k.error().what, r.error().what);
  }
  void expect_bz_error(const std::vector<std::byte>& img, const std::string& needle) {
    auto r = load_bzimage(*mem_, img);
    ASSERT_FALSE(r) << "expected failure: " << needle;
    EXPECT_NE(r.error().what.find(needle), std::string::npos) << r.error().what;
  }
  uint8_t byte_at(uint64_t gpa) { return *mem_->read_obj<uint8_t>(GuestAddress(gpa)); }

  std::unique_ptr<GuestMemory> mem_;
};

std::vector<std::byte> valid_elf() {
  // text at 16 MiB (0x2000 file bytes, 0x3000 in memory: 0x1000 of bss), data at 20 MiB.
  return make_elf({{.paddr = 16 * kMiB, .filesz = 0x2000, .memsz = 0x3000, .fill = 0xcc},
                   {.paddr = 20 * kMiB, .filesz = 0x100, .memsz = 0x100, .fill = 0xdd}},
                  16 * kMiB + 0x40);
}

TEST_F(KernelLoaderTest, ValidElfLoadsAtPaddrWithBssZeroed) {
  // Dirty the bss area first: the loader must zero it, not rely on fresh RAM.
  for (uint64_t a = 16 * kMiB + 0x2000; a < 16 * kMiB + 0x3000; a += 8)
    ASSERT_TRUE(mem_->write_obj<uint64_t>(GuestAddress(a), ~0ull));
  ASSERT_TRUE(mem_->write_obj<uint8_t>(GuestAddress(16 * kMiB + 0x3000), 0x77));  // just past the segment
  auto img = valid_elf();
  auto k = load_kernel(*mem_, img);
  ASSERT_TRUE(k) << k.error().what;
  EXPECT_EQ(k->format, KernelFormat::kElf);
  EXPECT_EQ(k->entry, GuestAddress(16 * kMiB + 0x40));
  EXPECT_EQ(k->image_start, GuestAddress(16 * kMiB));
  EXPECT_EQ(k->image_end, GuestAddress(20 * kMiB + 0x100));
  EXPECT_FALSE(k->header.has_value());
  EXPECT_EQ(byte_at(16 * kMiB), 0xcc);
  EXPECT_EQ(byte_at(16 * kMiB + 0x1fff), 0xcc);
  EXPECT_EQ(byte_at(16 * kMiB + 0x2000), 0x00);  // bss
  EXPECT_EQ(byte_at(16 * kMiB + 0x2fff), 0x00);
  EXPECT_EQ(byte_at(16 * kMiB + 0x3000), 0x77);  // untouched past p_memsz
  EXPECT_EQ(byte_at(20 * kMiB), 0xdd);
  EXPECT_EQ(byte_at(20 * kMiB + 0xff), 0xdd);
  // Loaded at p_paddr, not at p_vaddr or at the file offset.
  EXPECT_EQ(byte_at(20 * kMiB + 0x100), 0x00);
}

TEST_F(KernelLoaderTest, ElfNonLoadSegmentsAreIgnored) {
  auto img = make_elf({{.type = PT_NOTE, .paddr = 0x1000, .filesz = 0x10, .memsz = 0x10},
                       {.paddr = 2 * kMiB, .filesz = 0x10, .memsz = 0x10}},
                      2 * kMiB);
  auto k = load_kernel(*mem_, img);
  ASSERT_TRUE(k) << k.error().what;  // the PT_NOTE below 1 MiB is not loaded, so no complaint
  EXPECT_EQ(k->image_start, GuestAddress(2 * kMiB));
}

TEST_F(KernelLoaderTest, ElfTruncatedHeader) {
  auto img = valid_elf();
  img.resize(sizeof(Elf64_Ehdr) - 1);
  expect_elf_error(img, "truncated ELF header");
  img.resize(4);
  expect_elf_error(img, "truncated ELF header");
}

TEST_F(KernelLoaderTest, ElfWrongClassDataMachine) {
  auto img = valid_elf();
  auto eh = elf_header(img);
  eh.e_ident[EI_CLASS] = ELFCLASS32;
  set_elf_header(img, eh);
  expect_elf_error(img, "not 64-bit");

  img = valid_elf();
  eh = elf_header(img);
  eh.e_ident[EI_DATA] = ELFDATA2MSB;
  set_elf_header(img, eh);
  expect_elf_error(img, "not little-endian");

  img = valid_elf();
  eh = elf_header(img);
  eh.e_machine = EM_AARCH64;
  set_elf_header(img, eh);
  expect_elf_error(img, "not for x86-64");

  img = valid_elf();
  eh = elf_header(img);
  eh.e_phentsize = sizeof(Elf64_Phdr) - 8;
  set_elf_header(img, eh);
  expect_elf_error(img, "e_phentsize");
}

TEST_F(KernelLoaderTest, ElfPhdrsOutsideFile) {
  auto img = valid_elf();
  auto eh = elf_header(img);
  eh.e_phoff = img.size() - sizeof(Elf64_Phdr);  // second phdr would lie past the end
  set_elf_header(img, eh);
  expect_elf_error(img, "program headers lie outside the file");

  eh.e_phoff = UINT64_MAX - 16;  // offset + size wraps
  set_elf_header(img, eh);
  expect_elf_error(img, "program headers lie outside the file");

  img = valid_elf();
  eh = elf_header(img);
  eh.e_phnum = 0;
  set_elf_header(img, eh);
  expect_elf_error(img, "0 program headers");

  eh.e_phnum = 0xffff;
  set_elf_header(img, eh);
  expect_elf_error(img, "65535 program headers");
}

TEST_F(KernelLoaderTest, ElfFileszLargerThanMemsz) {
  auto img = valid_elf();
  auto ph = phdr(img, 0);
  ph.p_memsz = ph.p_filesz - 1;
  set_phdr(img, 0, ph);
  expect_elf_error(img, "p_filesz > p_memsz");
}

TEST_F(KernelLoaderTest, ElfSegmentPastEndOfFile) {
  auto img = valid_elf();
  auto ph = phdr(img, 1);
  ph.p_filesz += 1;  // one byte more than the file has
  ph.p_memsz += 1;
  set_phdr(img, 1, ph);
  expect_elf_error(img, "segment 1 extends past the end of the file");

  ph = phdr(img, 0);
  ph.p_offset = UINT64_MAX - 8;  // offset + filesz wraps
  set_phdr(img, 0, ph);
  expect_elf_error(img, "segment 0 extends past the end of the file");
}

TEST_F(KernelLoaderTest, ElfSegmentAddressOverflow) {
  auto img = valid_elf();
  auto ph = phdr(img, 0);
  ph.p_paddr = UINT64_MAX - 0x1000;
  set_phdr(img, 0, ph);
  expect_elf_error(img, "address overflows");
}

TEST_F(KernelLoaderTest, ElfSegmentBelowOneMiB) {
  auto img = valid_elf();
  auto ph = phdr(img, 0);
  ph.p_paddr = 0x7000;  // the zero page
  set_phdr(img, 0, ph);
  expect_elf_error(img, "below 1 MiB");
  EXPECT_EQ(byte_at(0x7000), 0);  // nothing written
}

TEST_F(KernelLoaderTest, ElfSegmentOutsideGuestRam) {
  auto img = valid_elf();
  auto ph = phdr(img, 1);
  ph.p_paddr = kRam - 0x80;  // starts inside RAM, ends 0x80 past it
  set_phdr(img, 1, ph);
  expect_elf_error(img, "does not fit in guest RAM");
  ph.p_paddr = 4 * kRam;  // entirely outside
  set_phdr(img, 1, ph);
  expect_elf_error(img, "does not fit in guest RAM");
}

TEST_F(KernelLoaderTest, ElfNoLoadableSegment) {
  auto img = make_elf({{.type = PT_NOTE, .paddr = 2 * kMiB, .filesz = 0x10, .memsz = 0x10}}, 2 * kMiB);
  expect_elf_error(img, "no loadable segment");
  // A PT_LOAD with p_memsz 0 does not count either.
  img = make_elf({{.paddr = 2 * kMiB, .filesz = 0, .memsz = 0}}, 2 * kMiB);
  expect_elf_error(img, "no loadable segment");
}

TEST_F(KernelLoaderTest, ElfEntryOutsideSegments) {
  auto img = make_elf({{.paddr = 16 * kMiB, .filesz = 0x100, .memsz = 0x200}}, 16 * kMiB + 0x200);
  expect_elf_error(img, "entry point 0x1000200 is not inside a loaded segment");
  img = make_elf({{.paddr = 16 * kMiB, .filesz = 0x100, .memsz = 0x200}}, 16 * kMiB - 1);
  expect_elf_error(img, "not inside a loaded segment");
  img = make_elf({{.paddr = 16 * kMiB, .filesz = 0x100, .memsz = 0x200}}, 16 * kMiB + 0x1ff);
  EXPECT_TRUE(load_elf_kernel(*mem_, img));  // last byte of the segment is fine
}

// --- bzImage --------------------------------------------------------------------------

TEST_F(KernelLoaderTest, ValidBzImage) {
  BzImageSpec spec;
  spec.cmdline_size = 0x1000;
  spec.init_size = 0x20000;  // bigger than the payload: the rest is zeroed and reserved
  auto img = make_bzimage(spec);
  ASSERT_TRUE(mem_->write_obj<uint64_t>(GuestAddress(0x1000000 + 0x10000), ~0ull));
  auto k = load_kernel(*mem_, img);
  ASSERT_TRUE(k) << k.error().what;
  EXPECT_EQ(k->format, KernelFormat::kBzImage);
  EXPECT_EQ(k->image_start, GuestAddress(0x1000000));
  EXPECT_EQ(k->entry, GuestAddress(0x1000000 + 0x200));
  EXPECT_EQ(k->image_end, GuestAddress(0x1000000 + 0x20000));
  EXPECT_EQ(k->cmdline_limit, 0x1000u);
  EXPECT_EQ(k->initrd_addr_max, 0x7fffffffu);
  ASSERT_TRUE(k->header.has_value());
  EXPECT_EQ(field(k->header->header), 0x53726448u);
  EXPECT_EQ(field(k->header->version), 0x020f);
  EXPECT_EQ(field(k->header->init_size), 0x20000u);
  // The protected-mode payload (after the 5 setup sectors) is at the load address.
  EXPECT_EQ(byte_at(0x1000000), 0x5a);
  EXPECT_EQ(byte_at(0x1000001), 0x5b);
  EXPECT_EQ(byte_at(0x1000000 + 0x2fff), (0x2fff & 0xff) ^ 0x5a);
  EXPECT_EQ(byte_at(0x1000000 + 0x10000), 0);  // inside init_size, past the payload: zeroed
}

TEST_F(KernelLoaderTest, BzImageHonorsPrefAddressAndAbove4GInitrd) {
  BzImageSpec spec;
  spec.pref_address = 0x2000000;
  spec.xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G;
  spec.version = 0x020b + 1;  // exactly 2.12
  auto k = load_bzimage(*mem_, make_bzimage(spec));
  ASSERT_TRUE(k) << k.error().what;
  EXPECT_EQ(k->image_start, GuestAddress(0x2000000));
  EXPECT_EQ(k->entry, GuestAddress(0x2000200));
  EXPECT_EQ(k->initrd_addr_max, UINT64_MAX);
  // A preferred address below 1 MiB would clobber boot structures: the default is used.
  spec.pref_address = 0x10000;
  k = load_bzimage(*mem_, make_bzimage(spec));
  ASSERT_TRUE(k);
  EXPECT_EQ(k->image_start, GuestAddress(MICROVM_KERNEL_DEFAULT_ADDR));
  // A relocatable kernel's pref_address off its kernel_alignment is rounded up.
  spec.pref_address = 0x1100000;
  k = load_bzimage(*mem_, make_bzimage(spec));
  ASSERT_TRUE(k) << k.error().what;
  EXPECT_EQ(k->image_start, GuestAddress(0x1200000));
  EXPECT_EQ(k->entry, GuestAddress(0x1200200));
}

TEST_F(KernelLoaderTest, BzImageDefaultCmdlineLimitWithoutField) {
  BzImageSpec spec;
  spec.cmdline_size = 0;
  auto k = load_bzimage(*mem_, make_bzimage(spec));
  ASSERT_TRUE(k);
  EXPECT_EQ(k->cmdline_limit, 2047u);
}

TEST_F(KernelLoaderTest, BzImageNoHdrS) {
  auto img = make_bzimage();
  img[0x202] = std::byte{'X'};
  expect_bz_error(img, "no HdrS signature");
  auto k = load_kernel(*mem_, img);
  ASSERT_FALSE(k);
  EXPECT_NE(k.error().what.find("unrecognised image format"), std::string::npos);
  img = make_bzimage();
  img[0x1fe] = std::byte{0};  // boot_flag 0xaa55 broken
  expect_bz_error(img, "no HdrS signature");
}

TEST_F(KernelLoaderTest, BzImageTruncatedBeforeHeader) {
  auto img = make_bzimage();
  img.resize(0x250);
  expect_bz_error(img, "no setup header");
}

TEST_F(KernelLoaderTest, BzImageOldProtocol) {
  BzImageSpec spec;
  spec.version = 0x020b;
  expect_bz_error(make_bzimage(spec), "boot protocol 2.11 is too old");
}

TEST_F(KernelLoaderTest, BzImageNo64BitEntry) {
  BzImageSpec spec;
  spec.xloadflags = XLF_CAN_BE_LOADED_ABOVE_4G;
  expect_bz_error(make_bzimage(spec), "XLF_KERNEL_64");
}

TEST_F(KernelLoaderTest, BzImageNotLoadedHigh) {
  BzImageSpec spec;
  spec.loadflags = 0;
  expect_bz_error(make_bzimage(spec), "loaded high");
}

TEST_F(KernelLoaderTest, BzImageSetupCoversFile) {
  BzImageSpec spec;
  spec.setup_sects = 30;  // (30 + 1) * 512 bytes of setup, more than the file
  spec.payload_size = 0;
  auto img = make_bzimage(spec);
  img.resize(0x1000);
  expect_bz_error(img, "setup area covers the whole file");
  // setup_sects 0 means 4 (the boot protocol's legacy default): 5 sectors, exactly the file.
  spec.setup_sects = 0;
  img = make_bzimage(spec);
  ASSERT_EQ(img.size(), 5u * 512);
  expect_bz_error(img, "setup area covers the whole file");
}

TEST_F(KernelLoaderTest, BzImagePayloadEndsBeforeEntry) {
  // startup_64 is 0x200 bytes in: a shorter protected-mode kernel would have the vCPU start
  // in zeroed memory (found by fuzz_kernel_loader).
  BzImageSpec spec;
  spec.payload_size = 0x200;
  spec.init_size = 0x10000;  // init_size does not make up for missing image bytes
  expect_bz_error(make_bzimage(spec), "ends before its 64-bit entry point");
  spec.payload_size = 0x201;
  auto k = load_bzimage(*mem_, make_bzimage(spec));
  ASSERT_TRUE(k) << k.error().what;
  EXPECT_LT(k->entry, k->image_end);
}

TEST_F(KernelLoaderTest, BzImageSyssizeLargerThanFile) {
  BzImageSpec spec;
  spec.syssize_delta = 1;  // 16 bytes more than the payload
  expect_bz_error(make_bzimage(spec), "syssize says");
  spec.syssize_delta = 0;
  spec.payload_size = 0x3001;  // rounded-up syssize of an unaligned payload is fine
  EXPECT_TRUE(load_bzimage(*mem_, make_bzimage(spec)));
}

TEST_F(KernelLoaderTest, BzImageBadKernelAlignment) {
  BzImageSpec spec;
  spec.kernel_alignment = 0x300000;
  expect_bz_error(make_bzimage(spec), "kernel_alignment is not a power of two");
  spec.kernel_alignment = 0;
  expect_bz_error(make_bzimage(spec), "kernel_alignment");
  spec.relocatable = 0;  // only a relocatable kernel's alignment matters
  EXPECT_TRUE(load_bzimage(*mem_, make_bzimage(spec)));
}

TEST_F(KernelLoaderTest, BzImageInitSizeTooLargeForRam) {
  BzImageSpec spec;
  spec.init_size = 0xffffffff;
  expect_bz_error(make_bzimage(spec), "does not fit in guest RAM");
  spec.init_size = static_cast<uint32_t>(kRam - 0x1000000 + 1);  // one byte too many
  expect_bz_error(make_bzimage(spec), "does not fit in guest RAM");
  spec.init_size = static_cast<uint32_t>(kRam - 0x1000000);  // exactly fits
  EXPECT_TRUE(load_bzimage(*mem_, make_bzimage(spec)));
}

TEST_F(KernelLoaderTest, BzImagePrefAddressOutsideRam) {
  BzImageSpec spec;
  spec.pref_address = 1ull << 32;  // aligned, but far above the 64 MiB of RAM
  expect_bz_error(make_bzimage(spec), "does not fit in guest RAM");
  spec.pref_address = UINT64_MAX - 0x100;  // rounding up to kernel_alignment would wrap
  EXPECT_FALSE(load_bzimage(*mem_, make_bzimage(spec)));
  spec.relocatable = 0;  // used as is: still outside RAM
  EXPECT_FALSE(load_bzimage(*mem_, make_bzimage(spec)));
}

TEST_F(KernelLoaderTest, DetectionByMagic) {
  EXPECT_FALSE(load_kernel(*mem_, {}));
  std::vector<std::byte> junk(0x1000, std::byte{0x90});
  auto r = load_kernel(*mem_, junk);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("unrecognised"), std::string::npos);
  // ELF magic alone sends it to the ELF loader, which reports the truncation.
  std::vector<std::byte> elf_magic = {std::byte{0x7f}, std::byte{'E'}, std::byte{'L'}, std::byte{'F'}};
  r = load_kernel(*mem_, elf_magic);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("truncated ELF header"), std::string::npos);
  // "HdrS" at 0x202 sends it to the bzImage loader, which wants more.
  std::vector<std::byte> hdrs(0x206);
  std::memcpy(hdrs.data() + 0x202, "HdrS", 4);
  r = load_kernel(*mem_, hdrs);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("no setup header"), std::string::npos);
  hdrs.resize(0x205);  // magic cut short
  r = load_kernel(*mem_, hdrs);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("unrecognised"), std::string::npos);
}

}  // namespace
}  // namespace microvm
