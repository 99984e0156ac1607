// qcow2 unit tests that need no QEMU for the operation itself: malformed headers, detected
// corruption, and a random program of operations checked against a shadow copy.
#include "devices/block/qcow2/qcow2_image.h"

#include <fcntl.h>

#include <cstring>
#include <random>

#include "devices/block/open_disk.h"
#include "devices/block/qcow2/qcow2_backend.h"
#include "devices/block/qcow2/qcow2_create.h"
#include "devices/block/qcow2/qcow2_format.h"
#include "tests/unit/block/block_test_util.h"

namespace microvm {
namespace {

using namespace testing_block;
using namespace qcow2;

std::string make_image(const TempDir& dir, const std::string& name, uint64_t size = 1 << 20, uint32_t bits = 16) {
  auto path = dir.file(name);
  CreateOptions co;
  co.size = size;
  co.cluster_bits = bits;
  auto r = create_image(path, co);
  EXPECT_TRUE(r) << r.error().what;
  return path;
}

void patch(const std::string& path, uint64_t off, const std::vector<uint8_t>& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(off)), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}
std::vector<uint8_t> be32v(uint32_t v) {
  std::vector<uint8_t> b(4);
  put_be32(b.data(), v);
  return b;
}
std::vector<uint8_t> be64v(uint64_t v) {
  std::vector<uint8_t> b(8);
  put_be64(b.data(), v);
  return b;
}

DiskOptions qopts(const std::string& path, bool ro = false) {
  DiskOptions o;
  o.path = path;
  o.format = DiskFormat::kQcow2;
  o.read_only = ro;
  return o;
}

struct Malformed {
  const char* name;
  uint64_t offset;
  std::vector<uint8_t> bytes;
  const char* expect;
};

class MalformedHeader : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedHeader, IsRefusedNamingTheField) {
  TempDir dir;
  auto img = make_image(dir, "m.qcow2");
  patch(img, GetParam().offset, GetParam().bytes);
  auto d = open_disk(qopts(img, true));
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().what.find(GetParam().expect), std::string::npos) << d.error().what;
}

INSTANTIATE_TEST_SUITE_P(
    Fields, MalformedHeader,
    ::testing::Values(Malformed{"magic", 0, {'Q', 'F', 'I', 0}, "field magic"},
                      Malformed{"version", 4, be32v(4), "field version"},
                      Malformed{"cluster_bits", 20, be32v(30), "field cluster_bits"},
                      Malformed{"crypt", 32, be32v(1), "field crypt_method"},
                      Malformed{"l1_size_overflow", 36, be32v(0xffffffffu), "field l1_size"},
                      Malformed{"l1_size_small", 24, be64v(1ull << 45), "field l1_size"},
                      Malformed{"l1_past_eof", 40, be64v(1ull << 40), "field l1_table_offset"},
                      Malformed{"l1_unaligned", 40, be64v(65536 + 512), "field l1_table_offset"},
                      Malformed{"rt_zero", 56, be32v(0), "field refcount_table_clusters"},
                      Malformed{"rt_unaligned", 48, be64v(100), "field refcount_table_offset"},
                      Malformed{"rt_past_eof", 48, be64v(1ull << 30), "field refcount_table_offset"},
                      Malformed{"unknown_incompat", 72, be64v(1ull << 7), "bit 7"},
                      Malformed{"external_data", 72, be64v(1ull << 2), "external data"},
                      Malformed{"extended_l2", 72, be64v(1ull << 4), "extended L2"},
                      Malformed{"refcount_order", 96, be32v(7), "field refcount_order"},
                      Malformed{"header_length", 100, be32v(50), "field header_length"},
                      Malformed{"size_unaligned", 24, be64v(1000), "field size"},
                      Malformed{
                          "backing_size", 8, {0, 0, 0, 0, 0, 0, 0, 200, 0, 0, 0x13, 0x88}, "field backing_file_size"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Qcow2Corruption, L1EntryPastEofFailsTheRequestAndSetsTheCorruptBit) {
  TempDir dir;
  auto img = make_image(dir, "c.qcow2");
  {
    auto d = open_disk(qopts(img));
    ASSERT_TRUE(d);
    auto p = pattern(4096, 1);
    ASSERT_EQ(do_write(**d, 0, p.data(), 4096), 4096);
    ASSERT_EQ(do_flush(**d), 0);
  }
  // Point L1[0] far past the end of the file.
  std::vector<uint8_t> head(112);
  {
    auto all = read_file(img);
    uint64_t l1 = be64(all.data() + 40);
    patch(img, l1, be64v((1ull << 40) | kCopied));
  }
  auto d = open_disk(qopts(img));
  ASSERT_TRUE(d) << d.error().what;
  std::vector<uint8_t> buf(4096);
  EXPECT_EQ(do_read(**d, 0, buf.data(), 4096), -EIO);
  EXPECT_EQ(do_write(**d, 8192, buf.data(), 4096), -EIO);
  d->reset();
  auto all = read_file(img);
  EXPECT_TRUE(be64(all.data() + 72) & kIncompatCorrupt);
  // A corrupt image opens read-only only.
  EXPECT_FALSE(open_disk(qopts(img)));
  std::string out;
  ASSERT_EQ(qemu_img("info " + img, &out), 0) << out;
  EXPECT_NE(out.find("corrupt: true"), std::string::npos) << out;
}

TEST(Qcow2Corruption, L2EntryOverlappingTheHeaderIsDetected) {
  TempDir dir;
  auto img = make_image(dir, "o.qcow2", 1 << 20, 12);
  {
    auto d = open_disk(qopts(img));
    ASSERT_TRUE(d);
    auto p = pattern(4096, 1);
    ASSERT_EQ(do_write(**d, 0, p.data(), 4096), 4096);
    ASSERT_EQ(do_flush(**d), 0);
  }
  auto all = read_file(img);
  uint64_t l1 = be64(all.data() + 40);
  uint64_t l2 = be64(all.data() + l1) & kOffsetMask;
  patch(img, l2, be64v(0 | kCopied | 0));  // offset 0 with COPIED: reads as unallocated
  patch(img, l2 + 8, be64v(4096 * 0 + kCopied + (1ull << 9) * 0 + 0x200));  // unaligned data offset
  auto d = open_disk(qopts(img));
  ASSERT_TRUE(d);
  std::vector<uint8_t> buf(4096);
  EXPECT_EQ(do_read(**d, 0, buf.data(), 4096), 4096);
  EXPECT_EQ(do_read(**d, 4096, buf.data(), 4096), -EIO);
}

// Random reads, writes, zeroes, discards and flushes over a backing file, with a metadata
// cache of the minimum size so that every path through eviction runs; the image is reopened
// now and then and must always read back as the shadow copy, then pass qemu-img check.
class RandomOps : public ::testing::TestWithParam<int> {};

TEST_P(RandomOps, MatchShadowCopy) {
  // Parameters >= 100 run the same program on the synchronous engine, >= 200 with cache=none.
  const bool sync_engine = GetParam() >= 100 && GetParam() < 200;
  const bool direct = GetParam() >= 200;
  const uint32_t bits = static_cast<uint32_t>(GetParam() % 100);
  TempDir dir;
  const uint64_t size = 8ull << 20;
  auto base = dir.file("base.raw");
  auto shadow = pattern(size, 77);
  for (size_t i = 0; i < size; i += 65536) std::fill_n(shadow.begin() + static_cast<ptrdiff_t>(i), 16384, 0);
  write_file(base, shadow);
  auto img = dir.file("r.qcow2");
  CreateOptions co;
  co.size = size;
  co.cluster_bits = bits;
  co.backing_file = base;
  co.backing_format = "raw";
  ASSERT_TRUE(create_image(img, co));
  std::mt19937_64 rng(bits);
  auto opts = qopts(img);
  opts.backing = base;
  opts.qcow2_cache_bytes = 1;  // the minimum: 4 tables
  opts.engine = sync_engine ? EngineKind::kSync : EngineKind::kIoUring;
  if (direct) opts.cache = CacheMode::kNone;
  for (int round = 0; round < 4; ++round) {
    auto d = open_disk(opts);
    ASSERT_TRUE(d) << d.error().what;
    if (direct) {
      EXPECT_TRUE(static_cast<Qcow2Backend&>(**d).direct_io()) << "test dir refuses O_DIRECT?";
    }
    for (int i = 0; i < 300; ++i) {
      uint64_t len = 512 * (1 + rng() % 64);
      uint64_t off = 512 * (rng() % ((size - len) / 512));
      switch (rng() % 6) {
        case 0:
        case 1: {
          auto p = pattern(len, static_cast<uint32_t>(rng()));
          ASSERT_EQ(do_write(**d, off, p.data(), len), static_cast<int32_t>(len));
          std::memcpy(shadow.data() + off, p.data(), len);
          break;
        }
        case 2: {
          // Sector-aligned buffers, as a Linux guest sends (the O_DIRECT path takes them).
          std::vector<uint8_t> storage(len + 512);
          uint8_t* bp = storage.data() + (512 - reinterpret_cast<uintptr_t>(storage.data()) % 512) % 512;
          std::span<uint8_t> b(bp, len);
          ASSERT_EQ(do_read(**d, off, b.data(), len), static_cast<int32_t>(len));
          ASSERT_EQ(0, std::memcmp(b.data(), shadow.data() + off, len)) << "round " << round << " op " << i;
          break;
        }
        case 3:
          ASSERT_EQ(do_write_zeroes(**d, off, len, rng() & 1), 0);
          std::fill_n(shadow.begin() + static_cast<ptrdiff_t>(off), len, 0);
          break;
        case 4: {
          ASSERT_EQ(do_discard(**d, off, len), 0);
          std::vector<uint8_t> b(len);
          ASSERT_EQ(do_read(**d, off, b.data(), len), static_cast<int32_t>(len));
          // With a backing file, discarded clusters read as zeroes (never the backing data)
          // and partial clusters keep their data.
          for (uint64_t k = 0; k < len; ++k) {
            if (b[k] != shadow[off + k]) {
              ASSERT_EQ(b[k], 0) << "discard exposed other data at " << off + k;
            }
          }
          std::memcpy(shadow.data() + off, b.data(), len);
          break;
        }
        case 5:
          ASSERT_EQ(do_flush(**d), 0);
          break;
      }
    }
    ASSERT_EQ(do_flush(**d), 0);
  }
  std::string out;
  ASSERT_EQ(qemu_img("check " + img, &out), 0) << out;
  auto flat = dir.file("flat.raw");
  ASSERT_EQ(qemu_img("convert -f qcow2 -O raw " + img + " " + flat, &out), 0) << out;
  EXPECT_TRUE(read_file(flat) == shadow);
}

INSTANTIATE_TEST_SUITE_P(ClusterBits, RandomOps, ::testing::Values(9, 12, 16, 112, 212));

}  // namespace
}  // namespace microvm
