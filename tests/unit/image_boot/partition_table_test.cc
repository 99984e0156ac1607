#include "boot/image_boot/partition_table.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>

namespace microvm::image_boot {
namespace {

// sgdisk and sfdisk (gdisk, fdisk) write the tables; their own reports are the reference.
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

struct TempImage {
  std::string path;
  TempImage() {
    char tmpl[] = "/tmp/microvm-pt-XXXXXX";
    int fd = mkstemp(tmpl);
    close(fd);
    path = tmpl;
  }
  ~TempImage() { unlink(path.c_str()); }
};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

TEST(PartitionTable, GptAsSgdiskWroteIt) {
  TempImage img;
  ASSERT_EQ(system(("truncate -s 8M " + img.path + " && sgdisk -n1:2048:+1M -t1:ef00 -n2:4096:0 -t2:8300 " + img.path +
                    " >/dev/null")
                       .c_str()),
            0)
      << "sgdisk (gdisk) missing?";
  auto bytes = slurp(img.path);
  MemoryReader r(bytes);
  auto t = read_partition_table(r);
  ASSERT_TRUE(t) << t.error().what;
  EXPECT_EQ(t->kind, TableKind::kGpt);
  ASSERT_EQ(t->partitions.size(), 2u);
  EXPECT_EQ(t->partitions[0].number, 1u);
  EXPECT_TRUE(t->partitions[0].esp);
  EXPECT_EQ(t->partitions[0].offset, 2048u * 512);
  EXPECT_EQ(t->partitions[0].size, 1u << 20);
  EXPECT_EQ(t->partitions[1].offset, 4096u * 512);
  std::string guid = lower(sh("sgdisk -i2 " + img.path + " | sed -n 's/^Partition unique GUID: //p'"));
  EXPECT_EQ(t->partitions[1].part_uuid, guid);
  EXPECT_EQ(t->partitions[1].type, "0fc63daf-8483-4772-8e79-3d69d8477de4");

  // A flipped byte in the entry array fails its checksum; one in the header fails the header's.
  auto bad = bytes;
  bad[1024 + 32] ^= std::byte{1};
  MemoryReader rb(bad);
  auto e = read_partition_table(rb);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().what.find("entry array checksum"), std::string::npos);
  bad = bytes;
  bad[512 + 40] ^= std::byte{1};
  MemoryReader rh(bad);
  e = read_partition_table(rh);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().what.find("header checksum"), std::string::npos);
}

TEST(PartitionTable, MbrAsSfdiskWroteIt) {
  TempImage img;
  ASSERT_EQ(system(("truncate -s 8M " + img.path + " && printf 'label: dos\\nlabel-id: 0x1234abcd\\n2048,2048,83\\n4096,,ef\\n' | sfdisk -q " +
                    img.path)
                       .c_str()),
            0)
      << "sfdisk (fdisk) missing?";
  auto bytes = slurp(img.path);
  MemoryReader r(bytes);
  auto t = read_partition_table(r);
  ASSERT_TRUE(t) << t.error().what;
  EXPECT_EQ(t->kind, TableKind::kMbr);
  ASSERT_EQ(t->partitions.size(), 2u);
  EXPECT_EQ(t->partitions[0].part_uuid, "1234abcd-01");
  EXPECT_EQ(t->partitions[0].offset, 2048u * 512);
  EXPECT_EQ(t->partitions[0].size, 2048u * 512);
  EXPECT_EQ(t->partitions[1].part_uuid, "1234abcd-02");
  EXPECT_TRUE(t->partitions[1].esp);
  EXPECT_EQ(t->partitions[1].offset + t->partitions[1].size, 8u << 20);
}

TEST(PartitionTable, NoTableAndHostileEntries) {
  std::vector<std::byte> blank(4096);
  MemoryReader r(blank);
  auto t = read_partition_table(r);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind, TableKind::kNone);
  // An MBR whose only partition runs past the end of the image has no usable partition.
  std::vector<std::byte> mbr(8192);
  mbr[510] = std::byte{0x55};
  mbr[511] = std::byte{0xaa};
  mbr[446 + 4] = std::byte{0x83};
  mbr[446 + 8] = std::byte{1};
  mbr[446 + 12] = std::byte{0xff};
  mbr[446 + 13] = std::byte{0xff};
  MemoryReader rm(mbr);
  t = read_partition_table(rm);
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->partitions.empty());
  // A protective MBR with no GPT behind it.
  mbr[446 + 4] = std::byte{0xee};
  MemoryReader rp(mbr);
  t = read_partition_table(rp);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().what.find("no GPT header"), std::string::npos);
}

}  // namespace
}  // namespace microvm::image_boot
