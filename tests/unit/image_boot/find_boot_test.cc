// find_boot on ext4 file systems made by mkfs.ext4 -d: the bytes it loads are the file's bytes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <random>

#include "boot/image_boot/boot_search.h"
#include "boot/image_boot/disk_map_source.h"

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

// FindOptions::map: ext4's extents become runs in the image (no bytes read), and a
// DiskMapSource over them reads the files' exact bytes, at any offset; ext2 (block-mapped)
// falls back to reading the bytes.
TEST_P(FindBoot, MapsExtentFilesAndTheSourceReadsTheirBytes) {
  char tmpl[] = "/tmp/microvm-fb-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string d = tmpl;
  ASSERT_EQ(system(("mkdir -p " + d + "/root/boot").c_str()), 0);
  std::string kernel(3 * 1024 * 1024 + 4097, '\0');
  std::mt19937_64 rng(11);
  for (auto& c : kernel) c = static_cast<char>(rng());
  std::ofstream(d + "/root/boot/vmlinuz-9", std::ios::binary) << kernel;
  std::ofstream(d + "/root/boot/a.img", std::ios::binary) << "first-";
  std::ofstream(d + "/root/boot/b.img", std::ios::binary) << "second";
  std::ofstream(d + "/root/boot/extlinux.conf") << "LABEL l\n LINUX vmlinuz-9\n INITRD a.img,b.img\n";
  // A partition table, so the runs' offsets must include the partition's start.
  ASSERT_EQ(
      system(("mkfs." + std::string(GetParam()) + " -q -F -d " + d + "/root " + d + "/fs.img 32M && truncate -s 40M " +
              d + "/disk.img && sgdisk -n1:2048:0 " + d + "/disk.img >/dev/null && dd if=" + d + "/fs.img of=" + d +
              "/disk.img bs=512 seek=2048 conv=notrunc status=none")
                 .c_str()),
      0);
  auto image = slurp(d + "/disk.img");
  ASSERT_EQ(system(("rm -rf " + d).c_str()), 0);
  MemoryReader disk(image);
  FindOptions o;
  o.load = true;
  o.map = true;
  auto plan = find_boot(disk, o);
  ASSERT_TRUE(plan) << plan.error().what;
  if (std::string(GetParam()) != "ext4") {
    EXPECT_FALSE(plan->kernel_map);
    EXPECT_EQ(plan->kernel_bytes.size(), kernel.size());
    return;
  }
  ASSERT_TRUE(plan->kernel_map);
  ASSERT_TRUE(plan->initrd_map);
  EXPECT_TRUE(plan->kernel_bytes.empty());
  EXPECT_TRUE(plan->initrd_bytes.empty());
  int opens = 0;
  auto open = [&]() -> Result<std::shared_ptr<ImageReader>> {
    ++opens;
    return std::make_unique<MemoryReader>(image);
  };
  auto k = DiskMapSource::create(open, *plan->kernel_map);
  ASSERT_TRUE(k) << k.error().what;
  EXPECT_EQ(opens, 0);  // opened on the first read, not before
  ASSERT_EQ((*k)->size(), kernel.size());
  std::vector<std::byte> got(kernel.size());
  // Odd-sized reads that straddle blocks and extents.
  for (size_t at = 0; at < got.size();) {
    size_t n = std::min<size_t>(got.size() - at, 70001);
    ASSERT_TRUE((*k)->read_at(at, std::span(got).subspan(at, n)));
    at += n;
  }
  EXPECT_TRUE(std::memcmp(got.data(), kernel.data(), kernel.size()) == 0);
  EXPECT_EQ(opens, 1);
  std::byte one[1];
  EXPECT_FALSE((*k)->read_at(kernel.size(), one));  // past the end
  auto i = DiskMapSource::create(open, *plan->initrd_map);
  ASSERT_TRUE(i);
  std::string initrd((*i)->size(), '\0');
  ASSERT_TRUE((*i)->read_at(0, std::as_writable_bytes(std::span(initrd))));
  EXPECT_EQ(initrd, "first-second");
  // An image that shrank below the map is refused on open, not read out of bounds.
  auto shrunk = DiskMapSource::create(
      []() -> Result<std::shared_ptr<ImageReader>> {
        return std::make_unique<MemoryReader>(std::span<const std::byte>());
      },
      *plan->kernel_map);
  ASSERT_TRUE(shrunk);
  EXPECT_FALSE((*shrunk)->read_at(0, one));
}

TEST(DiskMapSource, RefusesBadMapsAndReadsHolesAsZeros) {
  std::vector<std::byte> image(8192, std::byte{7});
  auto open = [&]() -> Result<std::shared_ptr<ImageReader>> { return std::make_unique<MemoryReader>(image); };
  EXPECT_FALSE(DiskMapSource::create(open, DiskMap{100, {{50, 0, 51}}}));              // past the file
  EXPECT_FALSE(DiskMapSource::create(open, DiskMap{100, {{0, 0, 10}, {5, 0, 10}}}));   // overlap
  EXPECT_FALSE(DiskMapSource::create(open, DiskMap{100, {{0, UINT64_MAX - 5, 10}}}));  // wraps
  auto s = DiskMapSource::create(open, DiskMap{100, {{10, 4096, 20}, {60, 0, 10}}});
  ASSERT_TRUE(s) << s.error().what;
  std::vector<std::byte> out(100, std::byte{0xff});
  ASSERT_TRUE((*s)->read_at(0, out));
  for (size_t b = 0; b < out.size(); ++b) {
    bool mapped = (b >= 10 && b < 30) || (b >= 60 && b < 70);
    EXPECT_EQ(out[b], mapped ? std::byte{7} : std::byte{0}) << b;
  }
  auto past = DiskMapSource::create(open, DiskMap{100, {{0, 8190, 10}}});  // past the image's end
  ASSERT_TRUE(past);
  EXPECT_FALSE((*past)->read_at(0, std::span(out).first(1)));
}

INSTANTIATE_TEST_SUITE_P(ExtFamily, FindBoot, ::testing::Values("ext4", "ext2"));

}  // namespace
}  // namespace microvm::image_boot
