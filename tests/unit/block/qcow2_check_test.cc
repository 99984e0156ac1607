// The checker against `qemu-img check` on crafted images (issue #12).
#include "devices/block/qcow2/qcow2_check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "base/fd.h"
#include "cli/img/img_command.h"
#include "devices/block/qcow2/qcow2_format.h"
#include "tests/unit/block/block_test_util.h"
#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;
using testing_block::img;  // the function, not the microvm::img namespace

// A compressed image (qemu-img convert -c) whose last compressed cluster's sector count is
// patched so that its data ends `overrun` bytes past the end of the file.
std::string compressed_with_overrun(const TempDir& dir, uint64_t overrun) {
  auto src = dir.file("src.raw"), q = dir.file("c.qcow2");
  std::vector<uint8_t> data(64 * 65536, 0);
  for (size_t c = 0; c < 64; ++c) {
    auto p = pattern(2048, static_cast<uint32_t>(c) + 1);  // compressible: 2 KiB noise, the rest zero
    std::memcpy(data.data() + c * 65536, p.data(), p.size());
  }
  write_file(src, data);
  std::string out;
  EXPECT_EQ(qemu_img("convert -f raw -O qcow2 -c -o cluster_size=65536 " + src + " " + q, &out), 0) << out;
  auto file = read_file(q);
  const uint32_t cluster_bits = qcow2::be32(file.data() + 20);
  const uint64_t l2 = qcow2::be64(file.data() + qcow2::be64(file.data() + 40)) & qcow2::kOffsetMask;
  const uint32_t x = 62 - (cluster_bits - 8);
  const uint64_t sector_mask = (1ull << (cluster_bits - 8)) - 1;
  size_t last = 0;
  uint64_t last_off = 0;
  for (size_t i = 0; i < (1u << cluster_bits) / 8; ++i) {
    uint64_t e = qcow2::be64(file.data() + l2 + 8 * i);
    if (!(e & qcow2::kCompressed)) continue;
    uint64_t off = e & ((1ull << x) - 1);
    if (off >= last_off) last = i, last_off = off;
  }
  EXPECT_GT(last_off, 0u);
  uint64_t end = file.size() + overrun;  // where the patched data should end
  uint64_t sectors = (end - last_off + (last_off & 511) + 511) / 512;
  EXPECT_LE(sectors, sector_mask + 1) << "overrun too large for the sector count field";
  uint64_t e = qcow2::be64(file.data() + l2 + 8 * last);
  e = (e & ~(sector_mask << x)) | ((sectors - 1) << x);
  qcow2::put_be64(file.data() + l2 + 8 * last, e);
  write_file(q, file);
  return q;
}

uint64_t our_corruptions(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  auto r = qcow2::check_image(fd.get());
  EXPECT_TRUE(r) << r.error().what;
  return r ? r->corruptions : 0;
}

TEST(Qcow2Check, CompressedClusterRunningPastTheFileIsACorruption) {
  TempDir dir;
  auto q = compressed_with_overrun(dir, 70000);  // more than a cluster past EOF
  std::string out;
  EXPECT_EQ(qemu_img("check " + q, &out), 2) << "the referee's verdict: " << out;
  EXPECT_GT(our_corruptions(q), 0u);
  EXPECT_EQ(img({"check", q}), 2);
}

// QEMU may leave the last cluster of a file short: data ending inside it is not an error.
TEST(Qcow2Check, CompressedClusterEndingInTheLastPartialClusterIsFine) {
  TempDir dir;
  auto q = compressed_with_overrun(dir, 100);
  std::string out;
  EXPECT_EQ(qemu_img("check " + q, &out), 0) << "the referee's verdict: " << out;
  EXPECT_EQ(our_corruptions(q), 0u);
  EXPECT_EQ(img({"check", q}), 0);
}

}  // namespace
}  // namespace microvm
