// find_boot on ext4 file systems made by mkfs.ext4 -d: the bytes it loads are the file's bytes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <random>

#include "boot/image_boot/boot_search.h"

namespace microvm::image_boot {
namespace {

std::vector<std::byte> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

// ext4 files are read extent by extent straight from the image; ext2's block-mapped files
// through libext2fs's file reads. Both must give the file's bytes.
class FindBoot : public ::testing::TestWithParam<const char*> {};

TEST_P(FindBoot, LoadsTheKernelAndInitrdBytesExactly) {
  char tmpl[] = "/tmp/microvm-fb-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string d = tmpl;
  ASSERT_EQ(system(("mkdir -p " + d + "/root/boot").c_str()), 0);
  // A kernel of many extents (odd size, random bytes) and two initrds GRUB concatenates.
  std::string kernel(5 * 1024 * 1024 + 123, '\0');
  std::mt19937_64 rng(7);
  for (auto& c : kernel) c = static_cast<char>(rng());
  std::ofstream(d + "/root/boot/vmlinuz-9", std::ios::binary) << kernel;
  std::ofstream(d + "/root/boot/a.img", std::ios::binary) << "first-";
  std::ofstream(d + "/root/boot/b.img", std::ios::binary) << "second";
  std::ofstream(d + "/root/boot/extlinux.conf")
      << "LABEL l\n LINUX vmlinuz-9\n INITRD a.img,b.img\n APPEND root=/dev/vda\n";
  ASSERT_EQ(system(("mkfs." + std::string(GetParam()) + " -q -F -d " + d + "/root " + d + "/fs.img 32M").c_str()), 0);
  auto image = slurp(d + "/fs.img");
  ASSERT_EQ(system(("rm -rf " + d).c_str()), 0);
  MemoryReader disk(image);
  FindOptions o;
  o.load = true;
  auto plan = find_boot(disk, o);
  ASSERT_TRUE(plan) << plan.error().what;
  EXPECT_EQ(plan->rule, "extlinux");
  ASSERT_EQ(plan->kernel_bytes.size(), kernel.size());
  EXPECT_TRUE(std::memcmp(plan->kernel_bytes.data(), kernel.data(), kernel.size()) == 0);
  std::string initrd(reinterpret_cast<const char*>(plan->initrd_bytes.data()), plan->initrd_bytes.size());
  EXPECT_EQ(initrd, "first-second");
  EXPECT_EQ(plan->options, "root=/dev/vda");
  // The same search with a limit below the kernel's size refuses it.
  o.max_kernel_bytes = kernel.size() - 1;
  auto small = find_boot(disk, o);
  ASSERT_FALSE(small);
  EXPECT_EQ(small.error().code, EFBIG);
}

INSTANTIATE_TEST_SUITE_P(ExtFamily, FindBoot, ::testing::Values("ext4", "ext2"));

}  // namespace
}  // namespace microvm::image_boot
