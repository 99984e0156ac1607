// The qcow2 cluster allocator: metadata larger than one refcount block's coverage (create,
// convert, resize), the refcount table cap, and never allocating over metadata when the
// refcounts of a malformed image say it is free. qemu-img and qemu-io are the referees.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "cli/img/img_command.h"
#include "devices/block/qcow2/qcow2_create.h"
#include "devices/block/qcow2/qcow2_format.h"
#include "devices/block/qcow2/qcow2_image.h"
#include "devices/block/qcow2/refcount_codec.h"
#include "tests/fuzz/qcow2_metadata_guard.h"
#include "tests/unit/block/block_test_util.h"

namespace microvm {
namespace {

using namespace testing_block;
using namespace qcow2;

constexpr uint64_t kKiB = 1024, kMiB = kKiB << 10, kGiB = kMiB << 10, kTiB = kGiB << 10;

std::unique_ptr<Image> open_image(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  EXPECT_TRUE(fd);
  auto img = Image::open(std::move(fd), {});
  EXPECT_TRUE(img) << (img ? "" : img.error().what);
  return img ? std::move(*img) : nullptr;
}

int qemu_io(const std::string& path, const std::string& cmd, std::string* out) {
  return run("qemu-io -f qcow2 -c '" + cmd + "' " + path + " 2>&1", out);
}

// qemu-img check exits 0 and reports neither errors nor leaks.
void expect_qemu_check_clean(const std::string& path) {
  std::string out;
  EXPECT_EQ(qemu_img("check " + path, &out), 0) << out;
  EXPECT_EQ(out.find("ERROR"), std::string::npos) << out;
  EXPECT_EQ(out.find("Leaked"), std::string::npos) << out;
}

nlohmann::json qemu_info(const std::string& path) {
  std::string out;
  EXPECT_EQ(qemu_img("info --output=json " + path, &out), 0) << out;
  return nlohmann::json::parse(out, nullptr, false);
}

// Writes a pattern at the end of the disk with qemu-io and one just before it with our
// Image, then reads both back with both.
void write_and_read_at_the_end(const std::string& path, uint64_t size, uint64_t cs) {
  std::string out;
  uint64_t qlen = std::min<uint64_t>(64 * kKiB, size / 2), qoff = size - qlen;
  ASSERT_EQ(qemu_io(path, "write -P 0x5a " + std::to_string(qoff) + " " + std::to_string(qlen), &out), 0) << out;
  ASSERT_EQ(out.find("error"), std::string::npos) << out;
  uint64_t olen = std::max<uint64_t>(cs, 4096), ooff = qoff - olen;
  {
    auto img = open_image(path);
    ASSERT_TRUE(img);
    std::vector<uint8_t> p(olen, 0xc3);
    ASSERT_EQ(img->write(ooff, p.data(), olen), 0);
    std::vector<uint8_t> back(qlen);
    ASSERT_EQ(img->read(qoff, back.data(), qlen), 0);
    EXPECT_EQ(back, std::vector<uint8_t>(qlen, 0x5a));
    ASSERT_EQ(img->flush(), 0);
  }
  ASSERT_EQ(qemu_io(path, "read -P 0x5a " + std::to_string(qoff) + " " + std::to_string(qlen), &out), 0) << out;
  EXPECT_EQ(out.find("Pattern verification failed"), std::string::npos) << out;
  ASSERT_EQ(qemu_io(path, "read -P 0xc3 " + std::to_string(ooff) + " " + std::to_string(olen), &out), 0) << out;
  EXPECT_EQ(out.find("Pattern verification failed"), std::string::npos) << out;
  expect_qemu_check_clean(path);
}

// ---------------------------------------------------------------- metadata over many refcount blocks

struct BigCase {
  const char* name;
  uint32_t bits;
  uint32_t refcount_order;
  uint32_t version;
  uint64_t size;
};

class LargeMetadata : public ::testing::TestWithParam<BigCase> {};

// The L1 table is bigger than what one refcount block covers: creating it must add the
// refcount blocks (and grow the refcount table) it needs.
TEST_P(LargeMetadata, CreatePassesQemuCheckAndTheEndOfTheDiskWorks) {
  const auto& c = GetParam();
  TempDir dir;
  auto path = dir.file("big.qcow2");
  CreateOptions co;
  co.size = c.size;
  co.cluster_bits = c.bits;
  co.refcount_order = c.refcount_order;
  co.version = c.version;
  auto r = create_image(path, co);
  ASSERT_TRUE(r) << r.error().what;
  expect_qemu_check_clean(path);
  auto j = qemu_info(path);
  EXPECT_EQ(j["virtual-size"], c.size);
  EXPECT_EQ(j["cluster-size"], 1u << c.bits);
  EXPECT_EQ(j["format-specific"]["data"]["refcount-bits"], 1u << c.refcount_order);
  write_and_read_at_the_end(path, c.size, 1ull << c.bits);
}

INSTANTIATE_TEST_SUITE_P(
    Alloc, LargeMetadata,
    ::testing::Values(BigCase{"c512_520M", 9, 4, 3, 520 * kMiB}, BigCase{"c512_520M_v2", 9, 4, 2, 520 * kMiB},
                      BigCase{"c1k_9G", 10, 4, 3, 9 * kGiB}, BigCase{"c4k_2T", 12, 4, 3, 2 * kTiB},
                      BigCase{"c4k_3T", 12, 4, 3, 3 * kTiB}, BigCase{"c512_rc64_200M", 9, 6, 3, 200 * kMiB},
                      // The largest L1 (32 MiB) at 512 B clusters: 257 new refcount blocks, and
                      // the one-cluster refcount table (64 entries) must grow first.
                      BigCase{"c512_128G", 9, 4, 3, 128 * kGiB}, BigCase{"c512_rc1_1G", 9, 0, 3, 1 * kGiB}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Qcow2Alloc, ResizeTo3TWith4kClustersKeepsTheData) {
  TempDir dir;
  auto path = dir.file("grow.qcow2");
  std::string out;
  ASSERT_EQ(qemu_img("create -q -f qcow2 -o cluster_size=4096 " + path + " 1G", &out), 0) << out;
  ASSERT_EQ(qemu_io(path, "write -P 0x33 0 1M", &out), 0) << out;
  ASSERT_EQ(qemu_io(path, "write -P 0x44 1023M 1M", &out), 0) << out;
  {
    auto img = open_image(path);
    ASSERT_TRUE(img);
    auto r = img->resize(3 * kTiB);
    ASSERT_TRUE(r) << r.error().what;
    ASSERT_EQ(img->flush(), 0);
  }
  expect_qemu_check_clean(path);
  EXPECT_EQ(qemu_info(path)["virtual-size"], 3 * kTiB);
  ASSERT_EQ(qemu_io(path, "read -P 0x33 0 1M", &out), 0) << out;
  EXPECT_EQ(out.find("Pattern verification failed"), std::string::npos) << out;
  ASSERT_EQ(qemu_io(path, "read -P 0x44 1023M 1M", &out), 0) << out;
  EXPECT_EQ(out.find("Pattern verification failed"), std::string::npos) << out;
  write_and_read_at_the_end(path, 3 * kTiB, 4096);
}

int img_cmd(std::vector<std::string> args) {
  args.insert(args.begin(), "img");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return run_img_command(static_cast<int>(argv.size()), argv.data());
}

TEST(Qcow2Alloc, Convert1GiBRawTo512ByteClusters) {
  TempDir dir;
  auto src = dir.file("src.raw"), dst = dir.file("dst.qcow2");
  {
    Fd fd(::open(src.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_TRUE(fd);
    ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(kGiB)), 0);
    // Data at the start, in the middle and at the very end; the rest is a hole.
    for (uint64_t off : {uint64_t{0}, kGiB / 2 + 4096, kGiB - 3 * kMiB}) {
      auto p = pattern(3 * kMiB, static_cast<uint32_t>(off >> 12));
      ASSERT_EQ(::pwrite(fd.get(), p.data(), p.size(), static_cast<off_t>(off)), static_cast<ssize_t>(p.size()));
    }
  }
  ASSERT_EQ(img_cmd({"convert", "-q", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=512", src, dst}), 0);
  expect_qemu_check_clean(dst);
  std::string out;
  EXPECT_EQ(qemu_img("compare -f raw -F qcow2 " + src + " " + dst, &out), 0) << out;
  EXPECT_EQ(qemu_info(dst)["cluster-size"], 512);
}

// A table that would need a refcount table over the 8 MiB cap is refused before anything is
// written, and the message says where the limit is.
TEST(Qcow2Alloc, RefcountTableCapIsRefusedBeforeWriting) {
  TempDir dir;
  auto path = dir.file("cap.qcow2");
  CreateOptions co;
  co.size = 1 * kMiB;
  co.cluster_bits = 9;
  co.refcount_order = 6;  // 64 clusters per refcount block: the cap covers 32 GiB of file
  ASSERT_TRUE(create_image(path, co));
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(33 * kGiB)), 0);  // unallocated tail
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  const auto before = static_cast<uint64_t>(st.st_size);
  std::vector<uint8_t> head_before(64 * kKiB);
  {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_EQ(::pread(fd.get(), head_before.data(), head_before.size(), 0), static_cast<ssize_t>(head_before.size()));
  }
  {
    auto img = open_image(path);
    ASSERT_TRUE(img);
    auto r = img->resize(10 * kGiB);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().what.find("8 MiB"), std::string::npos) << r.error().what;
    EXPECT_NE(r.error().what.find("32 GiB"), std::string::npos) << r.error().what;
  }
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), before);
  std::vector<uint8_t> head_after(head_before.size());
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_EQ(::pread(fd.get(), head_after.data(), head_after.size(), 0), static_cast<ssize_t>(head_after.size()));
  EXPECT_EQ(head_after, head_before);
}

TEST(Qcow2Alloc, CreateTooLargeForTheClusterSizeSaysTheLimit) {
  TempDir dir;
  auto path = dir.file("toolarge.qcow2");
  CreateOptions co;
  co.size = 129 * kGiB;
  co.cluster_bits = 9;
  auto r = create_image(path, co);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("128 GiB"), std::string::npos) << r.error().what;
  struct stat st {};
  EXPECT_NE(::stat(path.c_str(), &st), 0) << "nothing may be written";
}

// ---------------------------------------------------------------- never allocate over metadata

struct Layout {
  uint64_t cs = 0, l1_off = 0, l1_bytes = 0, rt_off = 0, rt_bytes = 0;
  std::vector<uint64_t> refblocks;
};

Layout layout_of(const std::vector<uint8_t>& f) {
  Layout l;
  l.cs = 1ull << be32(f.data() + 20);
  l.l1_off = be64(f.data() + 40);
  l.l1_bytes = uint64_t{be32(f.data() + 36)} * 8;
  l.rt_off = be64(f.data() + 48);
  l.rt_bytes = uint64_t{be32(f.data() + 56)} * l.cs;
  for (uint64_t i = 0; i < l.rt_bytes; i += 8) {
    if (uint64_t e = be64(f.data() + l.rt_off + i)) l.refblocks.push_back(e);
  }
  return l;
}

// The header cluster (without incompatible_features, where the corrupt bit may legitimately
// appear), the L1 table, the refcount table and every refcount block.
std::vector<uint8_t> metadata_bytes(std::vector<uint8_t> f, const Layout& l) {
  f.resize(std::max<uint64_t>(f.size(), l.l1_off + l.l1_bytes + l.cs), 0);
  std::fill(f.begin() + 72, f.begin() + 80, 0);
  std::vector<uint8_t> out(f.begin(), f.begin() + static_cast<long>(l.cs));
  auto add = [&](uint64_t off, uint64_t n) {
    out.insert(out.end(), f.begin() + static_cast<long>(off), f.begin() + static_cast<long>(off + n));
  };
  add(l.l1_off, l.l1_bytes);
  add(l.rt_off, l.rt_bytes);
  for (uint64_t b : l.refblocks) add(b, l.cs);
  return out;
}

void set_refcount_in_file(const std::string& path, uint64_t cluster) {
  auto f = read_file(path);
  auto l = layout_of(f);
  uint64_t epb = l.cs * 8 / 16;  // qemu-img's default 16-bit refcounts
  uint64_t block = be64(f.data() + l.rt_off + cluster / epb * 8);
  ASSERT_NE(block, 0u);
  rc_set(f.data() + block, cluster % epb, 4, 0);
  write_file(path, f);
}

enum class Damage {
  kRefcountTableEntryForHeader,
  kHeaderRefcount,
  kRefcountTableRefcount,
  kRefblockRefcount,
  kL1Refcount,
  kL2Refcount,
  kL1PointsAtRefblock,  // the L2 table for guest offset 0 "is" the refcount block
  kL2PointsAtRefblock,  // guest cluster 1's data cluster "is" the refcount block (COPIED set)
  kL2PointsAtL2,        // guest cluster 1's data cluster "is" its own L2 table
};

struct DamageCase {
  const char* name;
  Damage damage;
  uint32_t cluster_size;
};

class Malformed : public ::testing::TestWithParam<DamageCase> {};

// Whatever the refcounts say, a write never lands on the header, the L1 table, the refcount
// table, a refcount block or a (known) L2 table: it fails with EIO and the image is marked corrupt.
TEST_P(Malformed, WriteNeverOverwritesMetadata) {
  const auto& c = GetParam();
  TempDir dir;
  auto path = dir.file("m.qcow2");
  std::string out;
  ASSERT_EQ(
      qemu_img("create -q -f qcow2 -o cluster_size=" + std::to_string(c.cluster_size) + " " + path + " 16M", &out), 0)
      << out;
  const uint64_t cs = c.cluster_size;
  ASSERT_EQ(qemu_io(path, "write -P 0x11 0 " + std::to_string(cs), &out), 0) << out;
  auto f = read_file(path);
  auto l = layout_of(f);
  uint64_t l2 = be64(f.data() + l.l1_off) & kOffsetMask;
  ASSERT_NE(l2, 0u);
  switch (c.damage) {
    case Damage::kRefcountTableEntryForHeader: {
      std::vector<uint8_t> z(8, 0);
      std::memcpy(f.data() + l.rt_off, z.data(), 8);
      write_file(path, f);
      break;
    }
    case Damage::kHeaderRefcount:
      set_refcount_in_file(path, 0);
      break;
    case Damage::kRefcountTableRefcount:
      set_refcount_in_file(path, l.rt_off / cs);
      break;
    case Damage::kRefblockRefcount:
      set_refcount_in_file(path, l.refblocks[0] / cs);
      break;
    case Damage::kL1Refcount:
      set_refcount_in_file(path, l.l1_off / cs);
      break;
    case Damage::kL2Refcount:
      set_refcount_in_file(path, l2 / cs);
      break;
    case Damage::kL1PointsAtRefblock:
      put_be64(f.data() + l.l1_off, l.refblocks[0] | kCopied);
      write_file(path, f);
      break;
    case Damage::kL2PointsAtRefblock:
      put_be64(f.data() + l2 + 8, l.refblocks[0] | kCopied);
      write_file(path, f);
      break;
    case Damage::kL2PointsAtL2:
      put_be64(f.data() + l2 + 8, l2 | kCopied);
      write_file(path, f);
      break;
  }
  f = read_file(path);
  auto before = metadata_bytes(f, l);
  std::vector<uint8_t> l2_before(f.begin() + static_cast<long>(l2), f.begin() + static_cast<long>(l2 + cs));
  {
    auto img = open_image(path);
    ASSERT_TRUE(img);
    // The guest writes into the L2 range already mapped, then elsewhere (a new L2 table).
    auto p = pattern(cs, 2);
    int rc1 = img->write(cs, p.data(), cs);
    int rc2 = img->write(8 * kMiB, p.data(), cs);
    EXPECT_TRUE(rc1 == -EIO || rc2 == -EIO) << rc1 << " " << rc2;
    EXPECT_TRUE(img->corrupt());
    EXPECT_EQ(img->write(12 * kMiB, p.data(), cs), -EIO) << "a corrupt image takes no more writes";
    // Reads of what was there go on.
    if (c.damage != Damage::kL1PointsAtRefblock) {
      std::vector<uint8_t> back(cs);
      EXPECT_EQ(img->read(0, back.data(), cs), 0);
      EXPECT_EQ(back, std::vector<uint8_t>(cs, 0x11));
    }
  }
  auto after_file = read_file(path);
  EXPECT_EQ(metadata_bytes(after_file, l), before);
  EXPECT_EQ(
      std::vector<uint8_t>(after_file.begin() + static_cast<long>(l2), after_file.begin() + static_cast<long>(l2 + cs)),
      l2_before);
  EXPECT_TRUE(be64(after_file.data() + 72) & kIncompatCorrupt);
  EXPECT_EQ(qemu_info(path)["format-specific"]["data"]["corrupt"], true);
}

INSTANTIATE_TEST_SUITE_P(
    Alloc, Malformed,
    ::testing::Values(DamageCase{"rt_entry_for_header_4k", Damage::kRefcountTableEntryForHeader, 4096},
                      DamageCase{"rt_entry_for_header_512", Damage::kRefcountTableEntryForHeader, 512},
                      DamageCase{"rt_entry_for_header_64k", Damage::kRefcountTableEntryForHeader, 65536},
                      DamageCase{"header_refcount_4k", Damage::kHeaderRefcount, 4096},
                      DamageCase{"rt_refcount_4k", Damage::kRefcountTableRefcount, 4096},
                      DamageCase{"refblock_refcount_4k", Damage::kRefblockRefcount, 4096},
                      DamageCase{"refblock_refcount_64k", Damage::kRefblockRefcount, 65536},
                      DamageCase{"l1_refcount_4k", Damage::kL1Refcount, 4096},
                      DamageCase{"l1_refcount_512", Damage::kL1Refcount, 512},
                      DamageCase{"l2_refcount_4k", Damage::kL2Refcount, 4096},
                      DamageCase{"l2_refcount_64k", Damage::kL2Refcount, 65536},
                      DamageCase{"l1_points_at_refblock_4k", Damage::kL1PointsAtRefblock, 4096},
                      DamageCase{"l2_points_at_refblock_4k", Damage::kL2PointsAtRefblock, 4096},
                      DamageCase{"l2_points_at_l2_4k", Damage::kL2PointsAtL2, 4096}),
    [](const auto& info) { return std::string(info.param.name); });

// The fuzz target's metadata guard (tests/fuzz/qcow2_metadata_guard.h) must notice each kind of
// overwrite it exists for, and stay quiet on a healthy image.
TEST(Qcow2MetadataGuard, ReportsDataOverMetadata) {
  TempDir dir;
  auto path = dir.file("g.qcow2");
  CreateOptions co;
  co.size = 4 * kMiB;
  co.cluster_bits = 12;
  ASSERT_TRUE(create_image(path, co));
  Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(fd);
  auto opened = Image::open(Fd(::dup(fd.get())), {});
  ASSERT_TRUE(opened);
  auto& img = **opened;
  fuzz::Qcow2MetadataGuard guard;
  guard.snapshot(fd.get(), img.cluster_size());
  std::vector<uint8_t> p(8192);
  for (size_t k = 0; k < p.size(); k += 8) put_be64(p.data() + k, fuzz::kDataMarker | k);
  ASSERT_EQ(img.write(0, p.data(), p.size()), 0);
  ASSERT_EQ(img.flush(), 0);
  EXPECT_EQ(guard.check(img), "");
  auto l = layout_of(read_file(path));
  auto f = read_file(path);
  uint64_t l2 = be64(f.data() + l.l1_off) & kOffsetMask;
  auto clobber = [&](uint64_t off, uint64_t value) {
    uint8_t old[8], w[8];
    ASSERT_EQ(::pread(fd.get(), old, 8, static_cast<off_t>(off)), 8);
    put_be64(w, value);
    ASSERT_EQ(::pwrite(fd.get(), w, 8, static_cast<off_t>(off)), 8);
    EXPECT_NE(guard.check(img), "") << "offset " << off;
    ASSERT_EQ(::pwrite(fd.get(), old, 8, static_cast<off_t>(off)), 8);
    EXPECT_EQ(guard.check(img), "");
  };
  clobber(200, fuzz::kDataMarker);                      // header extension area
  clobber(l.l1_off + 8, fuzz::kDataMarker | 1);         // L1
  clobber(l.rt_off + 8, fuzz::kDataMarker);             // refcount table
  clobber(l.refblocks[0], fuzz::kDataMarker);           // refcount block
  clobber(l2 + 16, fuzz::kDataMarker);                  // L2 table
  clobber(l2 + 16, l.refblocks[0] | kCopied);           // L2 entry pointing at a refcount block
  clobber(l2 + 16, be64(f.data() + l2) & kOffsetMask);  // two L2 entries sharing a cluster
}

}  // namespace
}  // namespace microvm
