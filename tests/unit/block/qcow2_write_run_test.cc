// Image::writev gathers whole fresh clusters into one host write: a write across every kind of
// mapping (data, zero flag with and without a preallocated cluster, unallocated) must land
// exactly, leave the untouched bytes alone and keep the image clean for qemu-img.
#include <fcntl.h>

#include <cstring>

#include "devices/block/qcow2/qcow2_image.h"
#include "tests/unit/block/block_test_util.h"

namespace microvm {
namespace {

using namespace testing_block;

TEST(Qcow2WriteRun, WriteAcrossEveryMappingKindMatchesQemu) {
  TempDir dir;
  auto q = dir.file("img.qcow2"), raw = dir.file("out.raw");
  std::string out;
  constexpr size_t kCs = 4096, kSize = 1 << 20;
  ASSERT_EQ(qemu_img("create -q -f qcow2 -o cluster_size=4k " + q + " 1M", &out), 0) << out;
  // Clusters 0-15 data; 4-5 zero flag keeping their clusters; 8-9 zero flag unmapped;
  // 40-47 data; everything else unallocated.
  ASSERT_EQ(run("qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -z 16k 8k' -c 'write -z -u 32k 8k' "
                "-c 'write -P 0x22 160k 32k' " +
                    q + " >/dev/null",
                &out),
            0)
      << out;
  std::vector<uint8_t> expect(kSize, 0);
  std::memset(expect.data(), 0x11, 64 << 10);
  std::memset(expect.data() + (16 << 10), 0, 8 << 10);
  std::memset(expect.data() + (32 << 10), 0, 8 << 10);
  std::memset(expect.data() + (160 << 10), 0x22, 32 << 10);

  auto data = pattern(200 * kCs + 300, 7);
  const uint64_t at = 3 * kCs + 100;  // starts and ends inside clusters
  {
    Fd fd(::open(q.c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(fd);
    auto img = qcow2::Image::open(std::move(fd), {});
    ASSERT_TRUE(img) << img.error().what;
    ASSERT_EQ((*img)->write(at, data.data(), data.size()), 0);
    // A second run right behind the first, then a flush.
    auto more = pattern(48 * kCs, 8);
    ASSERT_EQ((*img)->write(204 * kCs, more.data(), more.size()), 0);
    std::memcpy(expect.data() + 204 * kCs, more.data(), more.size());
    ASSERT_EQ((*img)->flush(), 0);
    std::vector<uint8_t> back(kSize);
    ASSERT_EQ((*img)->read(0, back.data(), back.size()), 0);
    std::memcpy(expect.data() + at, data.data(), data.size());
    EXPECT_TRUE(back == expect) << "our own read-back";
  }
  EXPECT_EQ(qemu_img("check " + q, &out), 0) << out;
  ASSERT_EQ(qemu_img("convert -O raw " + q + " " + raw, &out), 0) << out;
  EXPECT_TRUE(read_file(raw) == expect) << "qemu-img's read-back";
}

}  // namespace
}  // namespace microvm
