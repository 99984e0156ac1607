// Media change (BlkDevice::swap_backend, PATCH /drives/ID): the new image serves the guest,
// the capacity in config space is its size, one configuration-change interrupt is raised,
// requests already with the old image complete there first, and a refused swap leaves the
// old image in place.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "devices/block/image_file.h"
#include "devices/block/open_disk.h"
#include "devices/block/raw_backend.h"
#include "tests/testing/faulty_engine.h"
#include "tests/unit/virtio/blk/blk_test_driver.h"

namespace microvm {
namespace {

constexpr uint32_t kLen = 4096;
constexpr uint32_t kSectorsPerReq = kLen / 512;

// A file of `bytes` bytes, every byte `fill`.
std::string make_image(uint64_t bytes, char fill) {
  char tmpl[] = "/var/tmp/microvm-blk-swap-XXXXXX";
  int fd = ::mkstemp(tmpl);
  EXPECT_GE(fd, 0);
  std::string block(kLen, fill);
  for (uint64_t at = 0; at < bytes; at += kLen) EXPECT_EQ(::pwrite(fd, block.data(), kLen, at), kLen);
  ::close(fd);
  return tmpl;
}

std::string read_file_range(const std::string& path, uint64_t offset, size_t len) {
  std::string out(len, '\0');
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::pread(fd, out.data(), len, offset), static_cast<ssize_t>(len));
  ::close(fd);
  return out;
}

std::unique_ptr<BlockBackend> open_raw(const std::string& path, bool read_only = false) {
  DiskOptions o;
  o.path = path;
  o.read_only = read_only;
  o.engine = EngineKind::kSync;
  auto b = open_disk(o);
  EXPECT_TRUE(b.has_value()) << b.error().what;
  return b ? std::move(*b) : nullptr;
}

class BlkSwapTest : public ::testing::Test {
 protected:
  std::string old_path = make_image(1 << 20, 'A');
  std::string new_path = make_image(3 << 20, 'B');
  testing::BlkTestDriver drv;

  void TearDown() override {
    drv.dev.reset();
    ::unlink(old_path.c_str());
    ::unlink(new_path.c_str());
  }
  // The byte the guest reads at `sector` (whole request checked to be uniform).
  char guest_byte(uint64_t sector) {
    GuestAddress buf = drv.buffer(kLen, 0xee);
    EXPECT_EQ(drv.read(sector, buf, kLen), VIRTIO_BLK_S_OK);
    auto got = drv.bytes(buf, kLen);
    for (std::byte b : got)
      if (b != got[0]) return '?';
    return static_cast<char>(got[0]);
  }
  uint64_t swaps() const { return drv.dev->counters().backend_swaps.load(); }
};

TEST_F(BlkSwapTest, NewImageServesTheGuestWithItsCapacityAfterOneConfigInterrupt) {
  drv.start(open_raw(old_path));
  ASSERT_EQ(drv.dev->config().capacity, (1u << 20) / 512);
  EXPECT_EQ(guest_byte(0), 'A');
  drv.irq.clear();

  auto old = drv.dev->swap_backend(open_raw(new_path));
  ASSERT_TRUE(old.has_value()) << old.error().what;
  ASSERT_NE(*old, nullptr);
  EXPECT_EQ((*old)->size_bytes(), 1u << 20) << "the old backend is handed back";
  old->reset();  // closes the old image (and drops its lock)

  EXPECT_EQ(drv.dev->config().capacity, (3u << 20) / 512);
  EXPECT_EQ(drv.irq.config_count(), 1u);
  EXPECT_EQ(swaps(), 1u);
  EXPECT_EQ(guest_byte(0), 'B');
  // Past the old end, inside the new one: allowed now.
  EXPECT_EQ(guest_byte((2u << 20) / 512), 'B');
  // A write lands in the new image only.
  GuestAddress w = drv.buffer(kLen, 'W');
  ASSERT_EQ(drv.write(kSectorsPerReq * 3, w, kLen), VIRTIO_BLK_S_OK);
  EXPECT_EQ(read_file_range(new_path, 3 * kLen, kLen), std::string(kLen, 'W'));
  EXPECT_EQ(read_file_range(old_path, 3 * kLen, kLen), std::string(kLen, 'A'));
  EXPECT_FALSE(drv.dev->needs_reset());
}

TEST_F(BlkSwapTest, RequestsWithTheOldImageCompleteThereBeforeTheSwap) {
  // An engine that holds at most two operations: of six writes, two are with the old backend
  // and a third waits for room when the swap comes (the device pops no more meanwhile).
  auto inner = make_io_engine(EngineKind::kSync, nullptr, 64);
  ASSERT_TRUE(inner.has_value());
  auto faulty = FaultyEngine::create(std::move(*inner));
  ASSERT_TRUE(faulty.has_value());
  (*faulty)->limit_in_flight(2);
  auto file = open_image_file(old_path, false, CacheMode::kWriteback, true, nullptr);
  ASSERT_TRUE(file.has_value()) << file.error().what;
  drv.start(std::make_unique<RawBackend>(std::move(*file), std::move(*faulty), false));

  constexpr size_t kWrites = 6;
  std::vector<GuestAddress> status;
  for (size_t i = 0; i < kWrites; ++i)
    status.push_back(
        drv.post(VIRTIO_BLK_T_OUT, kSectorsPerReq * i, drv.buffer(kLen, static_cast<uint8_t>('0' + i)), kLen, false));
  ASSERT_TRUE(drv.loop->run_once(0).has_value());  // the kick: submitted, none reaped yet
  const size_t taken = drv.dev->in_flight();
  ASSERT_GE(taken, 3u);
  ASSERT_LT(taken, kWrites) << "every write was taken: the test would not see the queue's rest go to the new image";
  ASSERT_GT(drv.dev->counters().backend_busy.load(), 0u) << "no request waited: the test proves less than it says";

  auto old = drv.dev->swap_backend(open_raw(new_path));
  ASSERT_TRUE(old.has_value()) << old.error().what;
  EXPECT_EQ(drv.dev->in_flight(), 0u) << "every request taken from the ring completed before the swap";
  // Taken before the swap: written to the old image, completed to the guest.
  for (size_t i = 0; i < taken; ++i) {
    EXPECT_EQ(*drv.mem->read_obj<uint8_t>(status[i]), VIRTIO_BLK_S_OK) << "write " << i;
    EXPECT_EQ(read_file_range(old_path, i * kLen, kLen), std::string(kLen, static_cast<char>('0' + i)))
        << "write " << i << " did not reach the old image";
    EXPECT_EQ(read_file_range(new_path, i * kLen, kLen), std::string(kLen, 'B')) << "write " << i;
  }
  // Still in the ring at the swap: served by the new image once the loop runs.
  drv.wait(status.back());
  for (size_t i = taken; i < kWrites; ++i) {
    EXPECT_EQ(*drv.mem->read_obj<uint8_t>(status[i]), VIRTIO_BLK_S_OK) << "write " << i;
    EXPECT_EQ(read_file_range(new_path, i * kLen, kLen), std::string(kLen, static_cast<char>('0' + i)))
        << "write " << i;
    EXPECT_EQ(read_file_range(old_path, i * kLen, kLen), std::string(kLen, 'A')) << "write " << i;
  }
  EXPECT_EQ(drv.dev->counters().io_errors.load(), 0u);
}

TEST_F(BlkSwapTest, RefusedSwapKeepsTheOldImage) {
  drv.start(open_raw(old_path));
  drv.irq.clear();
  // A writable drive cannot take a read-only image (VIRTIO_BLK_F_RO was negotiated without it).
  auto refused = drv.dev->swap_backend(open_raw(new_path, true));
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().what.find("read-only"), std::string::npos) << refused.error().what;
  EXPECT_FALSE(drv.dev->swap_backend(nullptr).has_value());
  EXPECT_EQ(drv.dev->config().capacity, (1u << 20) / 512);
  EXPECT_EQ(drv.irq.config_count(), 0u);
  EXPECT_EQ(swaps(), 0u);
  EXPECT_EQ(guest_byte(0), 'A');
}

TEST_F(BlkSwapTest, ReadOnlyDriveTakesAReadOnlyImage) {
  BlkOptions o;
  o.read_only = true;
  drv.start(open_raw(old_path, true), o);
  auto old = drv.dev->swap_backend(open_raw(new_path, true));
  ASSERT_TRUE(old.has_value()) << old.error().what;
  EXPECT_EQ(guest_byte(0), 'B');
}

TEST_F(BlkSwapTest, InactiveDeviceSwapsWithoutInterrupt) {
  auto d = BlkDevice::create(open_raw(old_path), {});
  ASSERT_TRUE(d.has_value());
  drv.dev = std::move(*d);
  auto old = drv.dev->swap_backend(open_raw(new_path));
  ASSERT_TRUE(old.has_value()) << old.error().what;
  EXPECT_EQ(drv.dev->config().capacity, (3u << 20) / 512);
  EXPECT_EQ(drv.irq.config_count(), 0u);
  drv.activate();  // a driver that loads afterwards reads the new image
  EXPECT_EQ(guest_byte(0), 'B');
}

}  // namespace
}  // namespace microvm
