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
  ASSERT_EQ(
      system(("truncate -s 8M " + img.path +
              " && printf 'label: dos\\nlabel-id: 0x1234abcd\\n2048,2048,83\\n4096,,ef\\n' | sfdisk -q " + img.path)
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

// Logical partitions in an extended one: numbered from 5 in chain order, as the kernel does
// (partx reports the kernel's numbering and offsets for the same image).
TEST(PartitionTable, MbrLogicalPartitionsAsPartxSeesThem) {
  TempImage img;
  ASSERT_EQ(system(("truncate -s 16M " + img.path +
                    " && printf 'label: dos\\nlabel-id: 0x0badcafe\\n"
                    "2048,2048,83\\n4096,,5\\n6144,2048,83\\n10240,2048,ef\\n14336,4096,83\\n' | sfdisk -q " +
                    img.path)
                       .c_str()),
            0)
      << "sfdisk (fdisk) missing?";
  auto bytes = slurp(img.path);
  MemoryReader r(bytes);
  auto t = read_partition_table(r);
  ASSERT_TRUE(t) << t.error().what;
  EXPECT_EQ(t->kind, TableKind::kMbr);
  std::string ours;
  for (const auto& p : t->partitions)
    ours += std::to_string(p.number) + " " + std::to_string(p.offset / 512) + " " + std::to_string(p.size / 512) + "\n";
  // partx lists the extended container (2) too; it holds no file system, so it is not ours.
  std::string partx = sh("partx -g -o NR,START,SECTORS " + img.path + " | awk '$1 != 2 {print $1, $2, $3}'");
  EXPECT_EQ(ours, partx + "\n");
  ASSERT_EQ(t->partitions.size(), 4u);
  EXPECT_EQ(t->partitions[1].number, 5u);
  EXPECT_EQ(t->partitions[1].part_uuid, "0badcafe-05");
  EXPECT_TRUE(t->partitions[2].esp);
  EXPECT_EQ(t->partitions[3].part_uuid, "0badcafe-07");
}

TEST(PartitionTable, ExtendedChainThatLoopsOrLeavesItsContainerEnds) {
  std::vector<std::byte> disk(64 * 512);
  auto entry = [&](uint64_t sector, int slot, uint8_t type, uint32_t start, uint32_t count) {
    size_t at = sector * 512 + 446 + 16 * slot;
    disk[at + 4] = std::byte{type};
    for (int i = 0; i < 4; ++i) {
      disk[at + 8 + i] = std::byte((start >> (8 * i)) & 0xFF);
      disk[at + 12 + i] = std::byte((count >> (8 * i)) & 0xFF);
    }
    disk[sector * 512 + 510] = std::byte{0x55};
    disk[sector * 512 + 511] = std::byte{0xaa};
  };
  entry(0, 0, 0x05, 8, 56);  // extended: sectors 8..63
  entry(8, 0, 0x83, 1, 4);   // logical 5 at 9
  entry(8, 1, 0x05, 16, 8);  // next record at 8+16 = 24
  entry(24, 0, 0x83, 1, 4);  // logical 6 at 25
  entry(24, 1, 0x05, 0, 8);  // back to the first record: a loop
  MemoryReader r(disk);
  auto t = read_partition_table(r);
  ASSERT_TRUE(t) << t.error().what;
  ASSERT_EQ(t->partitions.size(), 2u);
  EXPECT_EQ(t->partitions[0].number, 5u);
  EXPECT_EQ(t->partitions[1].number, 6u);
  EXPECT_EQ(t->partitions[1].offset, 25u * 512);
  // A logical partition reaching past the extended one, and a link past it, are not followed.
  entry(24, 0, 0x83, 1, 400);
  entry(24, 1, 0x05, 4000, 8);
  MemoryReader r2(disk);
  t = read_partition_table(r2);
  ASSERT_TRUE(t);
  ASSERT_EQ(t->partitions.size(), 1u);
}

TEST(PartitionTable, GptFor4kSectorsIsRefusedWithTheReason) {
  TempImage img;
  // fdisk writes the table for the logical sector size it is given (-b).
  ASSERT_EQ(system(("truncate -s 16M " + img.path + " && printf 'g\\nn\\n\\n\\n\\nw\\n' | fdisk -b 4096 " + img.path +
                    " >/dev/null 2>&1")
                       .c_str()),
            0);
  auto bytes = slurp(img.path);
  MemoryReader r(bytes);
  auto t = read_partition_table(r);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ENOTSUP);
  EXPECT_NE(t.error().what.find("4096-byte sectors"), std::string::npos) << t.error().what;
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
