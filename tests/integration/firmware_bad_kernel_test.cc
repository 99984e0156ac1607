// Hostile kernel images: boot_check (ELF) and bzimage_check (bzImage) with one header
// field broken at a time. microvm must refuse them with exit code 1 and a message, or
// (where the protocol leaves the loader a choice) boot them correctly. It must never
// crash, hang, or start the guest at a bad address.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

template <class T>
void put(std::string& img, size_t off, T v) {
  ASSERT_LE(off + sizeof v, img.size());
  std::memcpy(img.data() + off, &v, sizeof v);
}

struct Case {
  const char* name;
  const char* base;                        // "boot_check" or "bzimage_check"
  std::function<void(std::string&)> edit;  // breaks one thing
  bool may_boot;                           // the loader may legitimately accept it
};

// gtest prints parameters in failure messages; the name says it all.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// ELF64 offsets (elf.h): e_entry 0x18, e_phoff 0x20, e_phnum 0x38; Phdr p_offset 0x08,
// p_paddr 0x18, p_filesz 0x20, p_memsz 0x28. boot_check's program headers start at 0x40.
constexpr size_t kPh0 = 0x40;

const Case kCases[] = {
    {"empty", "boot_check", [](std::string& i) { i.clear(); }, false},
    {"garbage", "boot_check", [](std::string& i) { i.assign(8192, '\x90'); }, false},
    {"elf_truncated_header", "boot_check", [](std::string& i) { i.resize(40); }, false},
    {"elf_truncated_segments", "boot_check", [](std::string& i) { i.resize(0x1100); }, false},
    {"elf_phnum_huge", "boot_check", [](std::string& i) { put<uint16_t>(i, 0x38, 0xffff); }, false},
    {"elf_phoff_past_end", "boot_check", [](std::string& i) { put<uint64_t>(i, 0x20, 0xfffffffffff0ull); }, false},
    {"elf_offset_past_end", "boot_check", [](std::string& i) { put<uint64_t>(i, kPh0 + 0x08, 0x7fffffffffffull); },
     false},
    {"elf_filesz_over_memsz", "boot_check", [](std::string& i) { put<uint64_t>(i, kPh0 + 0x20, 0x10000000ull); },
     false},
    {"elf_paddr_in_mmio_gap", "boot_check", [](std::string& i) { put<uint64_t>(i, kPh0 + 0x18, 0xd0000000ull); },
     false},
    {"elf_paddr_wraps", "boot_check", [](std::string& i) { put<uint64_t>(i, kPh0 + 0x18, 0xfffffffffffff000ull); },
     false},
    {"elf_memsz_huge", "boot_check", [](std::string& i) { put<uint64_t>(i, kPh0 + 0x28, 0x100000000000ull); }, false},
    {"elf_entry_outside_segments", "boot_check", [](std::string& i) { put<uint64_t>(i, 0x18, 0x3000000ull); }, false},
    {"bz_truncated_setup", "bzimage_check", [](std::string& i) { i.resize(0x300); }, false},
    {"bz_truncated_payload", "bzimage_check", [](std::string& i) { i.resize(2048 + 0x100); }, false},
    {"bz_setup_sects_past_end", "bzimage_check", [](std::string& i) { put<uint8_t>(i, 0x1f1, 0xff); }, false},
    {"bz_old_protocol", "bzimage_check", [](std::string& i) { put<uint16_t>(i, 0x206, 0x0200); }, false},
    {"bz_not_64bit", "bzimage_check", [](std::string& i) { put<uint16_t>(i, 0x236, 0x0002); }, false},
    {"bz_alignment_not_power_of_two", "bzimage_check", [](std::string& i) { put<uint32_t>(i, 0x230, 0x300000); },
     false},
    {"bz_init_size_huge", "bzimage_check", [](std::string& i) { put<uint32_t>(i, 0x260, 0xfffff000u); }, false},
    {"bz_pref_address_in_mmio_gap", "bzimage_check", [](std::string& i) { put<uint64_t>(i, 0x258, 0xd0000000ull); },
     true},
    {"bz_pref_address_unaligned", "bzimage_check", [](std::string& i) { put<uint64_t>(i, 0x258, 0x1234567ull); }, true},
};

class FirmwareBadKernelTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_P(FirmwareBadKernelTest, RefusedCleanlyOrBootedCorrectly) {
  const Case& c = GetParam();
  std::string image = read_all(firmware_path(c.base));
  ASSERT_GT(image.size(), 4096u) << "firmware not built: " << firmware_path(c.base);
  ASSERT_NO_FATAL_FAILURE(c.edit(image));
  TempDir dir;
  std::string path = dir.write_file("kernel", image);
  ASSERT_FALSE(path.empty());
  VmRunResult r =
      run_microvm({"run", "--kernel", path, "--memory", "64M"}, VmRunOptions{.timeout = std::chrono::seconds(30)});
  ASSERT_FALSE(r.timed_out) << r.describe();
  ASSERT_EQ(r.term_signal, 0) << "microvm died from a signal\n" << r.describe();
  if (c.may_boot && r.exit_code == 0) {
    EXPECT_EQ(r.lines_with_prefix("BOOTCHECK FAIL").size(), 0u) << r.describe();
    EXPECT_EQ(r.lines_with_prefix("BOOTCHECK done failures=0").size(), 1u) << r.describe();
    return;
  }
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_FALSE(r.err.empty()) << "refused without saying why\n" << r.describe();
  EXPECT_TRUE(r.lines_with_prefix("BOOTCHECK").empty()) << "the guest ran anyway\n" << r.describe();
}

INSTANTIATE_TEST_SUITE_P(Images, FirmwareBadKernelTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace microvm::testing
