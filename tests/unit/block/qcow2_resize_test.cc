// Growing a qcow2 overlay (issue #12): the grown range reads as zeroes, never as the backing
// file's old bytes, as qemu-img resize does. Our resize is compared with qemu-img's resize of an
// identical copy (qemu-img compare) and must leave `qemu-img check` clean.
#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>

#include "base/fd.h"
#include "cli/img/img_command.h"
#include "devices/block/qcow2/qcow2_chain.h"
#include "devices/block/qcow2/qcow2_image.h"
#include "tests/unit/block/block_test_util.h"
#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;
using testing_block::img;  // the function, not the microvm::img namespace

int sh(const std::string& cmd) { return run(cmd + " >/dev/null 2>&1"); }

constexpr uint64_t kBase = 8 << 20;

struct ResizeCase {
  const char* name;
  const char* create_opts;  // qemu-img create -o
  uint64_t created;         // the overlay's size at creation
  uint64_t shrink_to;       // 0: no shrink first
  uint64_t grow_to;
  bool qemu_can_resize;  // qemu-img refuses to grow v2 overlays over a larger backing file
};

class OverlayResize : public ::testing::TestWithParam<ResizeCase> {};

TEST_P(OverlayResize, GrownRangeReadsZeroesLikeQemu) {
  const ResizeCase& c = GetParam();
  TempDir dir;
  auto base = dir.file("base.raw"), ours = dir.file("ours.qcow2"), theirs = dir.file("theirs.qcow2");
  write_file(base, pattern(kBase, 21));
  std::string out;
  ASSERT_EQ(qemu_img(std::string("create -f qcow2 -o ") + c.create_opts + " -b " + base + " -F raw " + ours + " " +
                         std::to_string(c.created),
                     &out),
            0)
      << out;
  // Allocate (copy-on-write from the backing file) the cluster that holds the old end, so its
  // tail past the end holds backing bytes on disk; and a cluster well inside.
  uint64_t old_end = c.shrink_to ? c.shrink_to : c.created;
  ASSERT_EQ(sh("qemu-io -f qcow2 -c 'write -P 0x71 " + std::to_string(old_end - 1024) +
               " 512' -c 'write -P 0x72 1M 4k' " + ours),
            0);
  ASSERT_EQ(sh("cp " + ours + " " + theirs), 0);

  if (c.shrink_to) {
    ASSERT_EQ(img({"resize", "-q", "--shrink", ours, std::to_string(c.shrink_to)}), 0);
    ASSERT_EQ(qemu_img("resize -q --shrink " + theirs + " " + std::to_string(c.shrink_to), &out), 0) << out;
  }
  ASSERT_EQ(img({"resize", "-q", ours, std::to_string(c.grow_to)}), 0);
  EXPECT_EQ(qemu_img("check " + ours, &out), 0) << out;

  // What the disk must read: the data below the old end, zeroes above it.
  std::vector<uint8_t> expect(c.grow_to, 0);
  {
    auto pre = dir.file("pre.raw");
    ASSERT_EQ(qemu_img("convert -f qcow2 -O raw " + theirs + " " + pre, &out), 0) << out;
    auto data = read_file(pre);
    std::memcpy(expect.data(), data.data(), std::min<size_t>(data.size(), old_end));
  }
  auto exp = dir.file("expect.raw");
  write_file(exp, expect);
  EXPECT_EQ(qemu_img("compare -f qcow2 -F raw " + ours + " " + exp, &out), 0) << out;
  if (c.qemu_can_resize) {
    ASSERT_EQ(qemu_img("resize -q " + theirs + " " + std::to_string(c.grow_to), &out), 0) << out;
    EXPECT_EQ(qemu_img("compare -f qcow2 -F qcow2 " + ours + " " + theirs, &out), 0) << out;
  }
  // Our own reader agrees (a guest reads through the same Image).
  DiskOptions o;
  o.path = ours;
  o.format = DiskFormat::kQcow2;
  o.read_only = true;
  o.allow_image_backing = true;
  auto image = qcow2::open_chain(o);
  ASSERT_TRUE(image) << image.error().what;
  ASSERT_EQ((*image)->size(), c.grow_to);
  std::vector<uint8_t> got(c.grow_to);
  ASSERT_EQ((*image)->read(0, got.data(), got.size()), 0);
  EXPECT_TRUE(got == expect);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, OverlayResize,
    ::testing::Values(ResizeCase{"v3_grow_unaligned_end", "cluster_size=65536", (3 << 20) + 512, 0, 12 << 20, true},
                      ResizeCase{"v3_grow_inside_backing", "cluster_size=4096", 2 << 20, 0, 6 << 20, true},
                      ResizeCase{"v3_shrink_then_grow", "cluster_size=65536", kBase, (2 << 20) + 1536, 10 << 20, true},
                      ResizeCase{"v2_grow_unaligned_end", "cluster_size=65536,compat=0.10", (3 << 20) + 512, 0,
                                 12 << 20, false},
                      ResizeCase{"v2_shrink_then_grow", "cluster_size=4096,compat=0.10", kBase, (1 << 20) + 512,
                                 kBase + 4096, false}),
    [](const auto& info) { return std::string(info.param.name); });

// A huge grow writes metadata only for the part the backing file covers.
TEST(OverlayResize, HugeGrowOnlyZeroesWhatTheBackingFileCovers) {
  TempDir dir;
  auto base = dir.file("base.raw"), top = dir.file("top.qcow2");
  write_file(base, pattern(kBase, 5));
  std::string out;
  ASSERT_EQ(qemu_img("create -f qcow2 -b " + base + " -F raw " + top + " 1M", &out), 0) << out;
  ASSERT_EQ(img({"resize", "-q", top, "1T"}), 0);
  EXPECT_EQ(qemu_img("check " + top, &out), 0) << out;
  struct stat st {};
  ASSERT_EQ(::stat(top.c_str(), &st), 0);
  EXPECT_LT(st.st_size, 4 << 20) << "L2 tables were written for the range past the backing file";
  // The range the backing file covered now reads zeroes, as does everything after it.
  EXPECT_EQ(sh("qemu-io -f qcow2 -c 'read -P 0 1M 7M' -c 'read -P 0 8M 1M' -c 'read -P 0 1023G 1M' " + top), 0);
  EXPECT_EQ(sh("qemu-io -f qcow2 -c 'read -P 0 0 1M' " + top), 1)
      << "the backing data below the old end is still there";
}

// Growing needs the backing file's size; a missing backing file fails instead of guessing.
TEST(OverlayResize, GrowRefusesWhenTheBackingFileIsMissing) {
  TempDir dir;
  auto base = dir.file("base.raw"), top = dir.file("top.qcow2");
  write_file(base, pattern(kBase, 5));
  std::string out;
  ASSERT_EQ(qemu_img("create -f qcow2 -b " + base + " -F raw " + top + " 1M", &out), 0) << out;
  ASSERT_EQ(::unlink(base.c_str()), 0);
  EXPECT_NE(img({"resize", "-q", top, "16M"}), 0);
  ASSERT_EQ(qemu_img("info --output=json -U " + top, &out), 0) << out;
  EXPECT_NE(out.find("\"virtual-size\": 1048576"), std::string::npos) << out;
}

// The library refuses to grow an overlay opened without its backing file: it could not know
// what must be zeroed. Shrinking, and growing images without a backing file, stay allowed.
TEST(OverlayResize, ImageGrowWithoutItsBackingFileIsRefused) {
  TempDir dir;
  auto base = dir.file("base.raw"), top = dir.file("top.qcow2"), plain = dir.file("plain.qcow2");
  write_file(base, pattern(kBase, 5));
  std::string out;
  ASSERT_EQ(qemu_img("create -f qcow2 -b " + base + " -F raw " + top + " 1M", &out), 0) << out;
  ASSERT_EQ(qemu_img("create -f qcow2 " + plain + " 1M", &out), 0) << out;
  auto open_alone = [](const std::string& path) {
    return qcow2::Image::open(Fd(::open(path.c_str(), O_RDWR | O_CLOEXEC)), {});
  };
  auto overlay = open_alone(top);
  ASSERT_TRUE(overlay) << overlay.error().what;
  EXPECT_FALSE((*overlay)->resize(16 << 20));
  EXPECT_TRUE((*overlay)->resize(512 << 10));
  EXPECT_EQ((*overlay)->size(), 512u << 10);
  auto alone = open_alone(plain);
  ASSERT_TRUE(alone) << alone.error().what;
  EXPECT_TRUE((*alone)->resize(16 << 20));
}

}  // namespace
}  // namespace microvm
