// Overlays larger than their backing file (issue #12): everything past the end of a backing
// image reads as zeroes, at every depth of the chain, through `Image`, the `Qcow2Backend`
// BlockBackend (io_uring and sync) and `microvm img convert`. qemu-img is the referee.
#include <cstring>
#include <functional>

#include "cli/img/img_command.h"
#include "devices/block/open_disk.h"
#include "devices/block/qcow2/qcow2_chain.h"
#include "tests/unit/block/block_test_util.h"
#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;
using testing_block::img;  // the function, not the microvm::img namespace

constexpr uint64_t kTop = 64 << 20;

int sh(const std::string& cmd) { return run(cmd + " >/dev/null 2>&1"); }

struct Chain {
  const char* name;
  // Builds the chain in `dir` and returns the top image; `ends` gets every level's size below the top.
  std::function<std::string(const TempDir& dir, std::vector<uint64_t>& ends)> build;
};

std::string raw_base(const TempDir& dir, uint64_t size) {
  auto base = dir.file("base.raw");
  write_file(base, pattern(size, 77));
  return base;
}

// A qcow2 base converted from random data (optionally compressed), `size` bytes.
std::string qcow2_base(const TempDir& dir, uint64_t size, bool compress) {
  auto raw = raw_base(dir, size), base = dir.file("base.qcow2");
  std::string out;
  EXPECT_EQ(qemu_img(std::string("convert -f raw -O qcow2 ") + (compress ? "-c " : "") + raw + " " + base, &out), 0)
      << out;
  return base;
}

// The top overlay (64 MiB), with qemu-io writes past the base's end and across it.
std::string top_over(const TempDir& dir, const std::string& backing, const char* fmt, uint64_t backing_end) {
  auto top = dir.file("top.qcow2");
  std::string out;
  EXPECT_EQ(qemu_img("create -f qcow2 -b " + backing + " -F " + fmt + " " + top + " " + std::to_string(kTop), &out), 0)
      << out;
  EXPECT_EQ(sh("qemu-io -f qcow2 -c 'write -P 0x5a 20M 4k' -c 'write -P 0x6b " + std::to_string(backing_end - 2048) +
               " 4k' " + top),
            0);
  return top;
}

const Chain kChains[] = {
    {"qcow2_base",
     [](const TempDir& d, std::vector<uint64_t>& ends) {
       ends = {8 << 20};
       return top_over(d, qcow2_base(d, 8 << 20, false), "qcow2", 8 << 20);
     }},
    {"compressed_qcow2_base",
     [](const TempDir& d, std::vector<uint64_t>& ends) {
       ends = {8 << 20};
       return top_over(d, qcow2_base(d, 8 << 20, true), "qcow2", 8 << 20);
     }},
    {"raw_base",
     [](const TempDir& d, std::vector<uint64_t>& ends) {
       ends = {8 << 20};
       return top_over(d, raw_base(d, 8 << 20), "raw", 8 << 20);
     }},
    {"unaligned_qcow2_base",
     [](const TempDir& d, std::vector<uint64_t>& ends) {
       ends = {(8 << 20) + 1536};
       return top_over(d, qcow2_base(d, ends[0], false), "qcow2", ends[0]);
     }},
    {"qcow2_over_qcow2_over_unaligned_raw",
     [](const TempDir& d, std::vector<uint64_t>& ends) {
       uint64_t base_size = (3 << 20) + 1536, mid_size = (5 << 20) + 512;
       ends = {base_size, mid_size};
       auto base = raw_base(d, base_size), mid = d.file("mid.qcow2");
       std::string out;
       EXPECT_EQ(qemu_img("create -f qcow2 -o cluster_size=4096 -b " + base + " -F raw " + mid + " " +
                              std::to_string(mid_size),
                          &out),
                 0)
           << out;
       // Data in the middle level past its own base's end, and across that end.
       EXPECT_EQ(sh("qemu-io -f qcow2 -c 'write -P 0x3c 4M 8k' -c 'write -P 0x4d " + std::to_string(base_size - 1024) +
                    " 2k' " + mid),
                 0);
       return top_over(d, mid, "qcow2", mid_size);
     }},
};

class ShortBacking : public ::testing::TestWithParam<Chain> {
 protected:
  void SetUp() override {
    top_ = GetParam().build(dir_, ends_);
    std::string out;
    ASSERT_EQ(qemu_img("convert -f qcow2 -O raw " + top_ + " " + dir_.file("ref.raw"), &out), 0) << out;
    ref_ = read_file(dir_.file("ref.raw"));
    ASSERT_EQ(ref_.size(), kTop);
  }

  DiskOptions opts(const std::string& path, bool ro) const {
    DiskOptions o;
    o.path = path;
    o.format = DiskFormat::kQcow2;
    o.read_only = ro;
    o.allow_image_backing = true;
    return o;
  }

  // Odd-sized reads that start before and end after each backing level's end.
  std::vector<std::pair<uint64_t, size_t>> straddles() const {
    std::vector<std::pair<uint64_t, size_t>> v;
    for (uint64_t e : ends_) {
      v.push_back({e - 700, 5000});
      v.push_back({e - 512, 512 * 3});
      v.push_back({e & ~uint64_t{65535}, 3 * 65536});
    }
    return v;
  }

  TempDir dir_;
  std::string top_;
  std::vector<uint64_t> ends_;
  std::vector<uint8_t> ref_;
};

TEST_P(ShortBacking, ImageReadsZeroesPastTheBackingEnd) {
  auto image = qcow2::open_chain(opts(top_, true));
  ASSERT_TRUE(image) << image.error().what;
  std::vector<uint8_t> got(kTop);
  for (uint64_t off = 0; off < kTop; off += 1 << 20)
    ASSERT_EQ((*image)->read(off, got.data() + off, 1 << 20), 0) << off;
  EXPECT_TRUE(got == ref_);
  for (auto [off, len] : straddles()) {
    std::vector<uint8_t> part(len);
    ASSERT_EQ((*image)->read(off, part.data(), len), 0) << off;
    EXPECT_EQ(std::memcmp(part.data(), ref_.data() + off, len), 0) << off;
  }
}

TEST_P(ShortBacking, ImgConvertCopiesTheWholeOverlay) {
  auto raw = dir_.file("out.raw"), q = dir_.file("out.qcow2");
  ASSERT_EQ(img({"convert", "-q", "-O", "raw", top_, raw}), 0);
  EXPECT_TRUE(read_file(raw) == ref_);
  ASSERT_EQ(img({"convert", "-q", "-O", "qcow2", top_, q}), 0);
  std::string out;
  EXPECT_EQ(qemu_img("compare -f qcow2 -F qcow2 " + q + " " + top_, &out), 0) << out;
  EXPECT_EQ(qemu_img("check " + q, &out), 0) << out;
}

TEST_P(ShortBacking, BackendReadsAndWritesPastTheBackingEndWithBothEngines) {
  for (EngineKind engine : {EngineKind::kIoUring, EngineKind::kSync}) {
    SCOPED_TRACE(engine == EngineKind::kIoUring ? "io_uring" : "sync");
    auto copy = dir_.file(std::string("top_") + (engine == EngineKind::kIoUring ? "uring" : "sync") + ".qcow2");
    ASSERT_EQ(sh("cp " + top_ + " " + copy), 0);
    auto expect = ref_;
    {
      auto o = opts(copy, false);
      o.engine = engine;
      auto d = open_disk(o);
      ASSERT_TRUE(d) << d.error().what;
      std::vector<uint8_t> got(kTop);
      for (uint64_t off = 0; off < kTop; off += 1 << 20)
        ASSERT_EQ(do_read(**d, off, got.data() + off, 1 << 20), 1 << 20) << off;
      EXPECT_TRUE(got == ref_);
      for (auto [off, len] : straddles()) {
        std::vector<uint8_t> part(len);
        ASSERT_EQ(do_read(**d, off, part.data(), len), static_cast<int32_t>(len)) << off;
        EXPECT_EQ(std::memcmp(part.data(), ref_.data() + off, len), 0) << off;
      }
      // Allocating writes whose copy-on-write reads the backing file across and past its end.
      std::vector<std::pair<uint64_t, size_t>> writes;
      for (uint64_t e : ends_) {
        writes.push_back({e - 100, 1000});
        writes.push_back({e + 300, 700});
      }
      writes.push_back({(40 << 20) + 1536, 5000});
      writes.push_back({kTop - 4096, 4096});
      uint32_t seed = 1;
      for (auto [off, len] : writes) {
        auto p = pattern(len, seed++);
        ASSERT_EQ(do_write(**d, off, p.data(), len), static_cast<int32_t>(len)) << off;
        std::memcpy(expect.data() + off, p.data(), len);
      }
      ASSERT_EQ(do_flush(**d), 0);
      for (uint64_t off = 0; off < kTop; off += 1 << 20)
        ASSERT_EQ(do_read(**d, off, got.data() + off, 1 << 20), 1 << 20) << off;
      EXPECT_TRUE(got == expect);
    }
    std::string out;
    EXPECT_EQ(qemu_img("check " + copy, &out), 0) << out;
    auto exp = dir_.file("expect.raw");
    write_file(exp, expect);
    EXPECT_EQ(qemu_img("compare -f qcow2 -F raw " + copy + " " + exp, &out), 0) << out;
  }
}

INSTANTIATE_TEST_SUITE_P(Chains, ShortBacking, ::testing::ValuesIn(kChains),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace microvm
