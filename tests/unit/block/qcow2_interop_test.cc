// qcow2 against QEMU's own tools: images made by qemu-img read back byte-for-byte; images we
// write pass `qemu-img check` and convert to the same raw bytes.
#include <sys/stat.h>

#include <cstring>
#include <random>

#include "devices/block/open_disk.h"
#include "devices/block/qcow2/qcow2_backend.h"
#include "devices/block/qcow2/qcow2_chain.h"
#include "devices/block/qcow2/qcow2_create.h"
#include "tests/unit/block/block_test_util.h"

namespace microvm {
namespace {

using namespace testing_block;

// A raw source with data, holes and zero runs, so converted images have every cluster kind.
std::vector<uint8_t> make_source(const std::string& path, size_t size, uint32_t seed) {
  std::vector<uint8_t> data(size, 0);
  std::mt19937 rng(seed);
  for (size_t off = 0; off < size; off += 4096) {
    int kind = static_cast<int>(rng() % 4);
    if (kind == 0) continue;  // hole
    auto p = pattern(4096, static_cast<uint32_t>(off) ^ seed);
    if (kind == 3) std::fill(p.begin() + 2048, p.end(), 0);  // compressible, partly zero
    std::memcpy(data.data() + off, p.data(), std::min<size_t>(4096, size - off));
  }
  write_file(path, data);
  return data;
}

std::vector<uint8_t> read_all(BlockBackend& b) {
  std::vector<uint8_t> out(b.size_bytes());
  for (size_t off = 0; off < out.size(); off += 1 << 20) {
    size_t n = std::min<size_t>(1 << 20, out.size() - off);
    EXPECT_EQ(do_read(b, off, out.data() + off, n), static_cast<int32_t>(n)) << off;
  }
  return out;
}

DiskOptions qopts(const std::string& path, bool ro = false) {
  DiskOptions o;
  o.path = path;
  o.format = DiskFormat::kQcow2;
  o.read_only = ro;
  return o;
}

struct Variant {
  const char* name;
  const char* opts;  // qemu-img -o options
  bool compress;
};

class QemuImages : public ::testing::TestWithParam<Variant> {};

TEST_P(QemuImages, ReadBackMatchesQemuRawConversion) {
  TempDir dir;
  auto src = dir.file("src.raw"), img = dir.file("img.qcow2"), back = dir.file("back.raw");
  auto data = make_source(src, 3 * 1024 * 1024 + 512 * 7, 42);
  std::string out;
  ASSERT_EQ(qemu_img(std::string("convert -f raw -O qcow2 ") + (GetParam().compress ? "-c " : "") + "-o " +
                         GetParam().opts + " " + src + " " + img,
                     &out),
            0)
      << out;
  ASSERT_EQ(qemu_img("convert -f qcow2 -O raw " + img + " " + back, &out), 0) << out;
  auto d = open_disk(qopts(img, true));
  ASSERT_TRUE(d) << d.error().what;
  EXPECT_EQ((*d)->size_bytes(), data.size());
  auto ours = read_all(**d);
  EXPECT_TRUE(ours == read_file(back));
  EXPECT_TRUE(ours == data);
}

TEST_P(QemuImages, WritesByUsPassQemuCheckAndConvertIdentically) {
  TempDir dir;
  auto src = dir.file("src.raw"), img = dir.file("img.qcow2"), back = dir.file("back.raw");
  auto data = make_source(src, 2 * 1024 * 1024, 7);
  std::string out;
  ASSERT_EQ(qemu_img(std::string("convert -f raw -O qcow2 ") + (GetParam().compress ? "-c " : "") + "-o " +
                         GetParam().opts + " " + src + " " + img,
                     &out),
            0)
      << out;
  {
    auto d = open_disk(qopts(img));
    ASSERT_TRUE(d) << d.error().what;
    std::mt19937 rng(1);
    for (int i = 0; i < 60; ++i) {
      size_t len = 512 * (1 + rng() % 40);
      size_t off = 512 * (rng() % ((data.size() - len) / 512));
      int op = static_cast<int>(rng() % 8);
      if (op < 5) {
        auto p = pattern(len, static_cast<uint32_t>(i));
        ASSERT_EQ(do_write(**d, off, p.data(), len), static_cast<int32_t>(len));
        std::memcpy(data.data() + off, p.data(), len);
      } else if (op == 5) {
        ASSERT_EQ(do_write_zeroes(**d, off, len, true), 0);
        std::fill_n(data.begin() + static_cast<ptrdiff_t>(off), len, 0);
      } else if (op == 6) {
        ASSERT_EQ(do_flush(**d), 0);
      } else {
        // Discard: contents become unspecified; without a backing file we zero them.
        ASSERT_EQ(do_discard(**d, off, len), 0);
        std::vector<uint8_t> now(len);
        ASSERT_EQ(do_read(**d, off, now.data(), len), static_cast<int32_t>(len));
        std::memcpy(data.data() + off, now.data(), len);
      }
    }
    ASSERT_EQ(do_flush(**d), 0);
    EXPECT_TRUE(read_all(**d) == data);
  }
  ASSERT_EQ(qemu_img("check " + img, &out), 0) << out;
  ASSERT_EQ(qemu_img("convert -f qcow2 -O raw " + img + " " + back, &out), 0) << out;
  EXPECT_TRUE(read_file(back) == data);
}

INSTANTIATE_TEST_SUITE_P(Variants, QemuImages,
                         ::testing::Values(Variant{"v3_64k", "cluster_size=65536,compat=1.1", false},
                                           Variant{"v2_64k", "cluster_size=65536,compat=0.10", false},
                                           Variant{"v3_512", "cluster_size=512", false},
                                           Variant{"v2_512", "cluster_size=512,compat=0.10", false},
                                           Variant{"v3_4k_lazy", "cluster_size=4096,lazy_refcounts=on", false},
                                           Variant{"v3_2M", "cluster_size=2097152", false},
                                           Variant{"v3_4k_refcount1", "cluster_size=4096,refcount_bits=1", false},
                                           Variant{"v3_4k_refcount64", "cluster_size=4096,refcount_bits=64", false},
                                           Variant{"v3_64k_zlib", "cluster_size=65536", true},
                                           Variant{"v3_4k_zlib", "cluster_size=4096", true},
                                           Variant{"v2_64k_zlib", "cluster_size=65536,compat=0.10", true},
                                           Variant{"v3_64k_zstd", "cluster_size=65536,compression_type=zstd", true}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Qcow2Create, OurImagesPassQemuCheckForEveryClusterSize) {
  TempDir dir;
  for (uint32_t bits : {9u, 12u, 16u, 21u}) {
    for (uint32_t version : {2u, 3u}) {
      auto img = dir.file("c" + std::to_string(bits) + "v" + std::to_string(version) + ".qcow2");
      qcow2::CreateOptions co;
      co.size = 64ull << 20;
      co.cluster_bits = bits;
      co.version = version;
      auto r = qcow2::create_image(img, co);
      ASSERT_TRUE(r) << r.error().what;
      std::string out;
      EXPECT_EQ(qemu_img("check " + img, &out), 0) << bits << " " << out;
      ASSERT_EQ(qemu_img("info --output=json " + img, &out), 0) << out;
      EXPECT_NE(out.find("\"virtual-size\": 67108864"), std::string::npos) << out;
      EXPECT_NE(out.find("\"cluster-size\": " + std::to_string(1u << bits)), std::string::npos) << out;
      // Write across the whole disk so the refcount table and blocks must grow.
      auto d = open_disk(qopts(img));
      ASSERT_TRUE(d) << d.error().what;
      auto p = pattern(8192, bits);
      for (uint64_t off = 0; off < co.size; off += co.size / 37 / 512 * 512) {
        ASSERT_EQ(do_write(**d, off, p.data(), p.size()), 8192);
      }
      ASSERT_EQ(do_flush(**d), 0);
      d->reset();
      EXPECT_EQ(qemu_img("check " + img, &out), 0) << bits << " v" << version << "\n" << out;
    }
  }
}

TEST(Qcow2Create, HugeVirtualSizeNeedsLittleMemoryAndDisk) {
  TempDir dir;
  auto img = dir.file("huge.qcow2");
  qcow2::CreateOptions co;
  co.size = 1ull << 50;  // 1 PiB
  auto r = qcow2::create_image(img, co);
  ASSERT_TRUE(r) << r.error().what;
  DiskOptions o = qopts(img);
  auto d = open_disk(o);
  ASSERT_TRUE(d) << d.error().what;
  auto p = pattern(4096, 3);
  ASSERT_EQ(do_write(**d, (1ull << 50) - 4096, p.data(), 4096), 4096);
  ASSERT_EQ(do_write(**d, 1ull << 40, p.data(), 4096), 4096);
  std::vector<uint8_t> back(4096);
  ASSERT_EQ(do_read(**d, (1ull << 50) - 4096, back.data(), 4096), 4096);
  EXPECT_EQ(back, p);
  ASSERT_EQ(do_flush(**d), 0);
  auto& q = static_cast<Qcow2Backend&>(**d);
  EXPECT_LE(q.image().cache_entries(), q.image().cache_capacity());
  EXPECT_LE(q.image().cache_capacity() * q.image().cluster_size(), 1u << 20);
  d->reset();
  std::string out;
  EXPECT_EQ(qemu_img("check " + img, &out), 0) << out;
  struct stat st {};
  ASSERT_EQ(::stat(img.c_str(), &st), 0);
  EXPECT_LT(st.st_blocks * 512, 64 << 20) << "allocated bytes";
}

TEST(Qcow2Backing, TwoLevelChainReadsThroughAndCopiesOnWrite) {
  TempDir dir;
  auto base = dir.file("base.raw"), mid = dir.file("mid.qcow2"), top = dir.file("top.qcow2"),
       flat = dir.file("flat.raw");
  auto data = make_source(base, 4 << 20, 9);
  std::string out;
  ASSERT_EQ(qemu_img("create -f qcow2 -o cluster_size=4096 -b " + base + " -F raw " + mid, &out), 0) << out;
  ASSERT_EQ(run("qemu-io -f qcow2 -c 'write -P 0xaa 1M 64k' -c 'write -z 2M 8k' " + mid + " >/dev/null 2>&1"), 0);
  ASSERT_EQ(qemu_img("create -f qcow2 -b " + mid + " -F qcow2 " + top, &out), 0) << out;
  ASSERT_EQ(run("qemu-io -f qcow2 -c 'write -P 0x55 3M 4k' " + top + " >/dev/null 2>&1"), 0);

  // A name stored in the image is not followed by default; the message says what to do.
  auto refused = open_disk(qopts(top, true));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().what.find("backing=PATH"), std::string::npos) << refused.error().what;
  // Naming only the first level still refuses the second level's stored name.
  auto o = qopts(top, true);
  o.backing = mid;
  o.backing_format = DiskFormat::kQcow2;
  EXPECT_FALSE(open_disk(o));

  o.allow_image_backing = true;
  ASSERT_EQ(qemu_img("convert -f qcow2 -O raw " + top + " " + flat, &out), 0) << out;
  auto expect = read_file(flat);
  {
    auto d = open_disk(o);
    ASSERT_TRUE(d) << d.error().what;
    EXPECT_TRUE(read_all(**d) == expect);
  }
  // Copy-on-write into the top image: partial clusters keep the backing bytes around them.
  {
    auto w = qopts(top);
    w.allow_image_backing = true;
    auto d = open_disk(w);
    ASSERT_TRUE(d) << d.error().what;
    auto p = pattern(1000, 5);
    for (uint64_t off : {uint64_t{1048576 + 100}, uint64_t{2097152 + 4000}, uint64_t{3 << 20}, uint64_t{12345}}) {
      ASSERT_EQ(do_write(**d, off, p.data(), p.size()), 1000);
      std::memcpy(expect.data() + off, p.data(), p.size());
    }
    ASSERT_EQ(do_write_zeroes(**d, 0, 65536, true), 0);  // v3: zero flag hides the backing data
    std::fill_n(expect.begin(), 65536, 0);
    ASSERT_EQ(do_discard(**d, 65536 * 2, 65536), 0);
    std::vector<uint8_t> now(65536);
    ASSERT_EQ(do_read(**d, 65536 * 2, now.data(), now.size()), 65536);
    std::memcpy(expect.data() + 65536 * 2, now.data(), now.size());
    ASSERT_EQ(do_flush(**d), 0);
    EXPECT_TRUE(read_all(**d) == expect);
  }
  EXPECT_EQ(qemu_img("check " + top, &out), 0) << out;
  ASSERT_EQ(qemu_img("convert -f qcow2 -O raw " + top + " " + flat, &out), 0) << out;
  EXPECT_TRUE(read_file(flat) == expect);
  // The backing images were opened read-only and are untouched.
  EXPECT_TRUE(read_file(base) == data);
}

TEST(Qcow2Backing, LoopsAreDetected) {
  TempDir dir;
  auto a = dir.file("a.qcow2"), b = dir.file("b.qcow2");
  std::string out;
  ASSERT_EQ(qemu_img("create -f qcow2 " + a + " 1M", &out), 0) << out;
  ASSERT_EQ(qemu_img("create -f qcow2 -b " + a + " -F qcow2 " + b, &out), 0) << out;
  ASSERT_EQ(qemu_img("rebase -u -f qcow2 -b " + b + " -F qcow2 " + a, &out), 0) << out;
  auto o = qopts(b, true);
  o.allow_image_backing = true;
  auto d = open_disk(o);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().what.find("loop"), std::string::npos) << d.error().what;
}

TEST(Qcow2Backing, UserNamedRawBackingNeedsNoOptIn) {
  TempDir dir;
  auto base = dir.file("base.raw"), top = dir.file("top.qcow2");
  auto data = make_source(base, 1 << 20, 3);
  qcow2::CreateOptions co;
  co.size = data.size();
  co.backing_file = base;
  co.backing_format = "raw";
  ASSERT_TRUE(qcow2::create_image(top, co));
  auto o = qopts(top);
  o.backing = base;
  auto d = open_disk(o);
  ASSERT_TRUE(d) << d.error().what;
  EXPECT_TRUE(read_all(**d) == data);
  std::string out;
  d->reset();
  EXPECT_EQ(qemu_img("check " + top, &out), 0) << out;
  ASSERT_EQ(qemu_img("info " + top, &out), 0) << out;
  EXPECT_NE(out.find("backing file format: raw"), std::string::npos) << out;
}

}  // namespace
}  // namespace microvm

namespace microvm {
namespace {

using namespace testing_block;

TEST(Qcow2Locks, WritableImageIsExclusiveAndBackingIsShared) {
  TempDir dir;
  auto base = dir.file("base.raw"), a = dir.file("a.qcow2"), b = dir.file("b.qcow2");
  write_file(base, pattern(1 << 20, 1));
  for (const auto& top : {a, b}) {
    qcow2::CreateOptions co;
    co.size = 1 << 20;
    co.backing_file = base;
    co.backing_format = "raw";
    ASSERT_TRUE(qcow2::create_image(top, co));
  }
  DiskOptions oa;
  oa.path = a;
  oa.format = DiskFormat::kQcow2;
  oa.backing = base;
  auto da = open_disk(oa);
  ASSERT_TRUE(da) << da.error().what;
  auto again = open_disk(oa);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().what.find("in use by process"), std::string::npos) << again.error().what;
  DiskOptions ob = oa;
  ob.path = b;
  auto db = open_disk(ob);
  EXPECT_TRUE(db) << "two overlays share one read-only backing file: " << db.error().what;
  DiskOptions raw;
  raw.path = base;
  raw.format = DiskFormat::kRaw;
  EXPECT_FALSE(open_disk(raw)) << "a backing file in use must not be opened for writing";
}

}  // namespace
}  // namespace microvm
