// FatVolume on file systems made by mkfs.vfat and filled by mtools (dosfstools and mtools are
// the reference): FAT12, FAT16 and FAT32, 512- and 4096-byte sectors, long names, fragmented
// files, and the UUID and label as blkid reports them. Then hostile edits of such images.
#include "boot/image_boot/fat_volume.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>

#include "boot/image_boot/byte_order.h"

namespace microvm::image_boot {
namespace {

std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::vector<std::byte> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

std::string random_bytes(size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::mt19937_64 rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string text(const std::vector<std::byte>& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

struct Layout {
  const char* name;
  int fat_bits;
  int size_kb;
  int sector;
  int cluster_sectors;
};

class FatImage {
 public:
  explicit FatImage(const Layout& l) {
    char tmpl[] = "/tmp/microvm-fat-XXXXXX";
    dir_ = mkdtemp(tmpl);
    img_ = dir_ + "/fat.img";
    std::string mkfs = "mkfs.vfat -C -F " + std::to_string(l.fat_bits) + " -S " + std::to_string(l.sector) + " -s " +
                       std::to_string(l.cluster_sectors) + " -n ESPLABEL -i 1234abcd " + img_ + " " +
                       std::to_string(l.size_kb) + " >/dev/null";
    ok_ = system(mkfs.c_str()) == 0;
  }
  ~FatImage() { [[maybe_unused]] int r = system(("rm -rf " + dir_).c_str()); }
  bool ok() const { return ok_; }
  const std::string& path() const { return img_; }
  bool mtools(const std::string& args) { return system(("MTOOLS_SKIP_CHECK=1 " + args + " >/dev/null").c_str()) == 0; }
  bool put(const std::string& dest, const std::string& bytes) {
    std::string src = dir_ + "/src";
    std::ofstream(src, std::ios::binary) << bytes;
    return mtools("mcopy -o -i " + img_ + " " + src + " ::" + dest);
  }

 private:
  std::string dir_, img_;
  bool ok_ = false;
};

class FatLayouts : public ::testing::TestWithParam<Layout> {};

TEST_P(FatLayouts, ReadsWhatMtoolsWrote) {
  const Layout& l = GetParam();
  FatImage img(l);
  ASSERT_TRUE(img.ok());
  ASSERT_TRUE(img.mtools("mmd -i " + img.path() + " ::/EFI ::/EFI/Linux ::/loader ::/loader/entries"));
  // A fragmented file: a hole left by a deleted file is filled first, the rest goes after.
  ASSERT_TRUE(img.put("/hole1", std::string(3 * 4096, 'h')));
  ASSERT_TRUE(img.put("/keep", "kept"));
  std::string big = random_bytes(300 * 1024 + 17, 1);
  ASSERT_TRUE(img.mtools("mdel -i " + img.path() + " ::/hole1"));
  ASSERT_TRUE(img.put("/EFI/Linux/linux-6.12.118-guest+2.efi", big));
  ASSERT_TRUE(img.put("/loader/entries/a-much-longer-name-than-8.3.conf", "title A\nlinux /vmlinuz\n"));
  ASSERT_TRUE(img.put("/LOADER.CNF", "short name"));
  ASSERT_TRUE(img.put("/empty", ""));
  // Enough entries that the directory spans several clusters.
  for (int i = 0; i < 70; ++i)
    ASSERT_TRUE(img.put("/EFI/file-number-" + std::to_string(i) + ".txt", std::to_string(i)));

  auto bytes = slurp(img.path());
  MemoryReader part(bytes);
  ASSERT_TRUE(FatVolume::probe(part));
  auto fs = FatVolume::open(part);
  ASSERT_TRUE(fs) << fs.error().what;
  EXPECT_EQ((*fs)->fat_bits(), static_cast<unsigned>(l.fat_bits));
  EXPECT_EQ((*fs)->fs_type(), "vfat");
  EXPECT_EQ((*fs)->fs_uuid(), sh("blkid -p -o value -s UUID " + img.path()));
  EXPECT_EQ((*fs)->fs_uuid(), "1234-ABCD");
  EXPECT_EQ((*fs)->label(), sh("blkid -p -o value -s LABEL " + img.path()));

  auto got = read_file(**fs, "/EFI/Linux/linux-6.12.118-guest+2.efi", 1 << 20);
  ASSERT_TRUE(got) << got.error().what;
  EXPECT_EQ(text(*got), big);
  // Names match without regard to case, as on the firmware and Linux's vfat.
  auto upper = read_text(**fs, "/efi/LINUX/LINUX-6.12.118-GUEST+2.EFI", 1 << 20);
  ASSERT_TRUE(upper) << upper.error().what;
  EXPECT_EQ(*upper, big);
  EXPECT_EQ(read_text(**fs, "/keep", 100).value_or("?"), "kept");
  EXPECT_EQ(read_text(**fs, "/loader.cnf", 100).value_or("?"), "short name");
  EXPECT_EQ(read_text(**fs, "/empty", 100).value_or("?"), "");
  EXPECT_EQ(read_text(**fs, "/loader/entries/a-much-longer-name-than-8.3.conf", 100).value_or("?"),
            "title A\nlinux /vmlinuz\n");

  auto names = list_dir(**fs, "/EFI");
  ASSERT_TRUE(names) << names.error().what;
  EXPECT_EQ(names->size(), 71u);  // Linux and 70 files; "." and ".." dropped
  EXPECT_EQ(names->front(), "Linux");
  auto mdir = sh("MTOOLS_SKIP_CHECK=1 mdir -b -i " + img.path() + " ::/EFI | wc -l");
  EXPECT_EQ(mdir, "71");
  EXPECT_EQ(read_text(**fs, "/EFI/file-number-69.txt", 100).value_or("?"), "69");

  auto missing = read_file(**fs, "/EFI/nope", 100);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ENOENT);
  auto too_big = read_file(**fs, "/EFI/Linux/linux-6.12.118-guest+2.efi", 1000);
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.error().code, EFBIG);
  auto up = resolve_path(**fs, "/EFI/../..");
  ASSERT_FALSE(up);
  EXPECT_EQ(up.error().code, EXDEV);
}

INSTANTIATE_TEST_SUITE_P(Fat, FatLayouts,
                         ::testing::Values(Layout{"fat12", 12, 2048, 512, 4}, Layout{"fat16", 16, 20480, 512, 1},
                                           Layout{"fat32", 32, 40960, 512, 1}, Layout{"fat16_4k", 16, 65536, 4096, 1}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(FatHostile, ALoopingClusterChainIsAnErrorNotAHang) {
  FatImage img(Layout{"fat16", 16, 20480, 512, 1});
  ASSERT_TRUE(img.ok());
  ASSERT_TRUE(img.put("/loop", std::string(4 * 512, 'x')));
  auto bytes = slurp(img.path());
  uint64_t fat = uint64_t(le16(bytes, 14)) * le16(bytes, 11);
  // Find the file's first cluster through the reader, then make its second link point back.
  MemoryReader part(bytes);
  auto fs = FatVolume::open(part);
  ASSERT_TRUE(fs);
  auto node = resolve_path(**fs, "/loop");
  ASSERT_TRUE(node);
  uint64_t c = node->id;
  uint64_t second = le16(bytes, fat + c * 2);
  bytes[fat + second * 2] = std::byte(c & 0xFF);
  bytes[fat + second * 2 + 1] = std::byte(c >> 8);
  MemoryReader bad(bytes);
  auto fs2 = FatVolume::open(bad);
  ASSERT_TRUE(fs2);
  auto r = read_file(**fs2, "/loop", 1 << 20);
  // The chain is followed only as far as the size needs: a loop within the size shows as
  // revisiting; with the size faked large it must stop at the cluster count.
  ASSERT_TRUE(r);  // 4 clusters needed, the loop c->2nd->c->2nd gives 4 (the bytes are the reader's)
  Node huge = *node;
  huge.size = 1ull << 30;
  auto r2 = (*fs2)->read(huge);
  ASSERT_FALSE(r2);
  EXPECT_TRUE(r2.error().code == ELOOP || r2.error().code == EIO) << r2.error().what;
}

TEST(FatHostile, AChainIntoAFreeClusterAndAFileLongerThanItsChainAreErrors) {
  FatImage img(Layout{"fat12", 12, 2048, 512, 4});
  ASSERT_TRUE(img.ok());
  ASSERT_TRUE(img.put("/f", std::string(5000, 'y')));
  auto bytes = slurp(img.path());
  MemoryReader part(bytes);
  auto fs = FatVolume::open(part);
  ASSERT_TRUE(fs);
  auto node = resolve_path(**fs, "/f");
  ASSERT_TRUE(node);
  Node longer = *node;
  longer.size = 5000 + 4 * 2048;
  auto r = (*fs)->read(longer);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EIO);
  // FAT12: clear the first cluster's entry (a link into a free cluster's "0").
  uint64_t fat = uint64_t(le16(bytes, 14)) * le16(bytes, 11);
  uint64_t c = node->id, at = fat + c + c / 2;
  uint16_t pair = le16(bytes, at);
  pair = c & 1 ? pair & 0x000F : pair & 0xF000;
  bytes[at] = std::byte(pair & 0xFF);
  bytes[at + 1] = std::byte(pair >> 8);
  MemoryReader bad(bytes);
  auto fs2 = FatVolume::open(bad);
  ASSERT_TRUE(fs2);
  auto r2 = read_file(**fs2, "/f", 1 << 20);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code, EIO);
}

TEST(FatHostile, BootSectorsThatLieAboutTheirSizeAreRefused) {
  FatImage img(Layout{"fat16", 16, 20480, 512, 1});
  ASSERT_TRUE(img.ok());
  auto bytes = slurp(img.path());
  {
    auto b = bytes;  // metadata (reserved sectors) past the end of the partition
    b[14] = std::byte{0xFF};
    b[15] = std::byte{0xFF};
    MemoryReader r(b);
    EXPECT_FALSE(FatVolume::open(r));
  }
  {
    auto b = bytes;  // more sectors than the partition holds: the clusters past the end fail when read
    b[32] = std::byte{0xFF};
    b[33] = std::byte{0xFF};
    b[34] = std::byte{0xFF};
    b[35] = std::byte{0x00};
    b[19] = std::byte{0};
    b[20] = std::byte{0};
    MemoryReader r(b);
    auto fs = FatVolume::open(r);
    if (fs) {
      Node past{Node::Kind::kFile, 0xFFF0, 4096};
      EXPECT_FALSE((*fs)->read(past));
    }
  }
  {
    auto b = bytes;  // a FAT too small for the cluster count
    b[22] = std::byte{1};
    b[23] = std::byte{0};
    MemoryReader r(b);
    EXPECT_FALSE(FatVolume::open(r));
  }
  {
    auto b = bytes;  // no boot signature
    b[510] = std::byte{0};
    MemoryReader r(b);
    EXPECT_FALSE(FatVolume::probe(r));
    EXPECT_FALSE(FatVolume::open(r));
  }
  {
    std::vector<std::byte> tiny(bytes.begin(), bytes.begin() + 600);  // truncated image
    MemoryReader r(tiny);
    EXPECT_FALSE(FatVolume::open(r));
  }
}

}  // namespace
}  // namespace microvm::image_boot
