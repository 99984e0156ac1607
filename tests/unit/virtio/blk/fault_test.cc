// Backend faults become VIRTIO_BLK_S_IOERR, never OK: virtio-blk over the real raw and qcow2
// backends, with the I/O engine (io_uring and sync) wrapped in a FaultyEngine. Also: one failed
// flush fails every later flush until the device is reset (the fsyncgate lesson).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "devices/block/image_file.h"
#include "devices/block/qcow2/qcow2_backend.h"
#include "devices/block/qcow2/qcow2_chain.h"
#include "devices/block/qcow2/qcow2_create.h"
#include "devices/block/raw_backend.h"
#include "tests/testing/faulty_engine.h"
#include "tests/unit/virtio/blk/blk_test_driver.h"

namespace microvm {
namespace {

constexpr uint64_t kDiskBytes = 4 << 20;
constexpr uint32_t kLen = 8192;

enum class Format { kRaw, kQcow2 };
struct Param {
  Format format;
  EngineKind engine;
};
std::string param_name(const ::testing::TestParamInfo<Param>& p) {
  return std::string(p.param.format == Format::kRaw ? "raw_" : "qcow2_") +
         (p.param.engine == EngineKind::kSync ? "sync" : "io_uring");
}

class BlkFaultTest : public ::testing::TestWithParam<Param> {
 protected:
  std::string path;
  FaultyEngine* faults = nullptr;
  testing::BlkTestDriver drv;

  void SetUp() override {
    char tmpl[] = "/var/tmp/microvm-blk-fault-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    ::close(fd);
    path = tmpl;
    auto inner = make_io_engine(GetParam().engine, nullptr, 64);
    ASSERT_TRUE(inner.has_value()) << inner.error().what;
    auto engine = FaultyEngine::create(std::move(*inner));
    ASSERT_TRUE(engine.has_value());
    faults = engine->get();
    std::unique_ptr<BlockBackend> backend;
    if (GetParam().format == Format::kRaw) {
      ASSERT_EQ(::truncate(path.c_str(), kDiskBytes), 0);
      auto file = open_image_file(path, false, CacheMode::kWriteback, true, nullptr);
      ASSERT_TRUE(file.has_value()) << file.error().what;
      backend = std::make_unique<RawBackend>(std::move(*file), std::move(*engine), false);
    } else {
      ASSERT_TRUE(qcow2::create_image(path, {.size = kDiskBytes}).has_value());
      DiskOptions o;
      o.path = path;
      o.format = DiskFormat::kQcow2;
      auto img = qcow2::open_chain(o);
      ASSERT_TRUE(img.has_value()) << img.error().what;
      backend = std::make_unique<Qcow2Backend>(std::move(*engine), std::move(*img));
    }
    drv.start(std::move(backend));
  }
  void TearDown() override {
    drv.dev.reset();
    ::unlink(path.c_str());
  }
  // qcow2 hands data transfers to the engine only for clusters already allocated: write the
  // range once (allocating, synchronous) so later reads and writes of it reach the engine.
  void allocate(uint64_t sector, uint32_t len) {
    ASSERT_EQ(drv.write(sector, drv.buffer(len, 0x11), len), VIRTIO_BLK_S_OK);
    ASSERT_EQ(drv.flush(), VIRTIO_BLK_S_OK);
  }
  uint64_t io_errors() const { return drv.dev->counters().io_errors.load(); }
};

TEST_P(BlkFaultTest, ReadEioIsIoErr) {
  allocate(0, kLen);
  faults->add({.op = FaultOp::kRead, .first = faults->seen(FaultOp::kRead) + 2, .error = EIO});
  GuestAddress buf = drv.buffer(kLen, 0xaa);
  EXPECT_EQ(drv.read(0, buf, kLen), VIRTIO_BLK_S_OK);
  EXPECT_EQ(drv.read(0, buf, kLen), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(drv.read(0, buf, kLen), VIRTIO_BLK_S_OK);  // one fault, not a dead disk
  EXPECT_EQ(faults->injected(), 1u);
  EXPECT_EQ(io_errors(), 1u);
}

TEST_P(BlkFaultTest, WriteEnospcAndEioAreIoErr) {
  allocate(0, kLen);
  uint64_t w = faults->seen(FaultOp::kWrite);
  faults->add({.op = FaultOp::kWrite, .first = w + 1, .error = ENOSPC});
  faults->add({.op = FaultOp::kWrite, .first = w + 2, .error = EIO});
  EXPECT_EQ(drv.write(0, drv.buffer(kLen, 0x22), kLen), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(drv.write(0, drv.buffer(kLen, 0x33), kLen), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(faults->injected(), 2u);
  // Nothing reached the disk: the old contents read back.
  GuestAddress back = drv.buffer(kLen);
  ASSERT_EQ(drv.read(0, back, kLen), VIRTIO_BLK_S_OK);
  EXPECT_EQ(drv.bytes(back, kLen)[kLen - 1], std::byte{0x11});
}

TEST_P(BlkFaultTest, ShortWriteThenErrorIsIoErr) {
  allocate(0, kLen);
  faults->add({.op = FaultOp::kWrite,
               .first = faults->seen(FaultOp::kWrite) + 1,
               .action = FaultAction::kPartial,
               .error = ENOSPC,
               .bytes = 4096});
  EXPECT_EQ(drv.write(0, drv.buffer(kLen, 0x44), kLen), VIRTIO_BLK_S_IOERR);
  // The prefix did land (as it would on a real disk): a torn write, reported as a failure.
  GuestAddress back = drv.buffer(kLen);
  ASSERT_EQ(drv.read(0, back, kLen), VIRTIO_BLK_S_OK);
  EXPECT_EQ(drv.bytes(back, kLen)[0], std::byte{0x44});
  EXPECT_EQ(drv.bytes(back, kLen)[kLen - 1], std::byte{0x11});
}

TEST_P(BlkFaultTest, ShortTransferReportedAsSuccessIsIoErr) {
  // An engine breaking its contract (a short count as the result) must still not yield OK.
  allocate(0, kLen);
  faults->add({.op = FaultOp::kWrite,
               .first = faults->seen(FaultOp::kWrite) + 1,
               .action = FaultAction::kPartial,
               .error = 0,
               .bytes = 512});
  faults->add({.op = FaultOp::kRead,
               .first = faults->seen(FaultOp::kRead) + 1,
               .action = FaultAction::kPartial,
               .error = 0,
               .bytes = 4096});
  EXPECT_EQ(drv.write(0, drv.buffer(kLen, 0x55), kLen), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(drv.read(0, drv.buffer(kLen), kLen), VIRTIO_BLK_S_IOERR);
}

TEST_P(BlkFaultTest, RefusedSubmitIsIoErr) {
  allocate(0, kLen);
  faults->add({.op = FaultOp::kWrite,
               .first = faults->seen(FaultOp::kWrite) + 1,
               .action = FaultAction::kRefuse,
               .error = EAGAIN});
  EXPECT_EQ(drv.write(0, drv.buffer(kLen, 0x66), kLen), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(drv.write(0, drv.buffer(kLen, 0x66), kLen), VIRTIO_BLK_S_OK);
}

TEST_P(BlkFaultTest, DeadDiskFailsEveryIoAndTheLoopGoesOn) {
  allocate(0, kLen);
  faults->add({.op = FaultOp::kRead, .first = faults->seen(FaultOp::kRead) + 1, .count = FaultRule::kForever});
  faults->add({.op = FaultOp::kWrite, .first = faults->seen(FaultOp::kWrite) + 1, .count = FaultRule::kForever});
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(drv.read(0, drv.buffer(512), 512), VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(drv.write(0, drv.buffer(512, 1), 512), VIRTIO_BLK_S_IOERR);
  }
  EXPECT_EQ(io_errors(), 40u);
  EXPECT_FALSE(drv.dev->needs_reset());  // a host error fails requests, not the device
}

TEST_P(BlkFaultTest, OneFaultInABatchFailsOnlyThatRequest) {
  allocate(0, 64 << 10);
  constexpr int kBatch = 8;
  faults->add({.op = FaultOp::kWrite, .first = faults->seen(FaultOp::kWrite) + 4, .error = EIO});
  std::vector<GuestAddress> status;
  for (int i = 0; i < kBatch; ++i)  // all in flight at once (one kick, one submission batch)
    status.push_back(drv.post(VIRTIO_BLK_T_OUT, 8 * i, drv.buffer(4096, static_cast<uint8_t>(0xa0 + i)), 4096, false));
  drv.wait(status.back());
  for (int i = 0; i < kBatch; ++i)
    EXPECT_EQ(*drv.mem->read_obj<uint8_t>(status[i]), i == 3 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK) << "request " << i;
  // Each OK write is on disk; the failed one left the old bytes.
  for (int i = 0; i < kBatch; ++i) {
    GuestAddress back = drv.buffer(4096);
    ASSERT_EQ(drv.read(8 * i, back, 4096), VIRTIO_BLK_S_OK);
    EXPECT_EQ(drv.bytes(back, 4096)[100], std::byte(i == 3 ? 0x11 : 0xa0 + i)) << "request " << i;
  }
}

// Raw only: discard, write-zeroes and flush go through the engine for raw images (qcow2 does
// its metadata work, and its fdatasync, synchronously on the image file).
class RawFaultTest : public BlkFaultTest {};

TEST_P(RawFaultTest, DiscardAndWriteZeroesFailuresAreIoErr) {
  faults->add({.op = FaultOp::kDiscard, .first = 1, .error = EIO});
  faults->add({.op = FaultOp::kWriteZeroes, .first = 1, .error = ENOSPC});
  EXPECT_EQ(drv.segment(VIRTIO_BLK_T_DISCARD, 0, 16), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(drv.segment(VIRTIO_BLK_T_WRITE_ZEROES, 0, 16), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(drv.segment(VIRTIO_BLK_T_DISCARD, 0, 16), VIRTIO_BLK_S_OK);
  EXPECT_EQ(drv.segment(VIRTIO_BLK_T_WRITE_ZEROES, 0, 16), VIRTIO_BLK_S_OK);
}

TEST_P(RawFaultTest, FailedFlushFailsEveryLaterFlushUntilReset) {
  ASSERT_EQ(drv.write(0, drv.buffer(kLen, 0x77), kLen), VIRTIO_BLK_S_OK);
  ASSERT_EQ(drv.flush(), VIRTIO_BLK_S_OK);
  // Only the next fdatasync fails, as on Linux: the one after it would succeed again.
  faults->add({.op = FaultOp::kSync, .first = faults->seen(FaultOp::kSync) + 1, .error = EIO});
  ASSERT_EQ(drv.write(0, drv.buffer(kLen, 0x78), kLen), VIRTIO_BLK_S_OK);
  EXPECT_EQ(drv.flush(), VIRTIO_BLK_S_IOERR);
  uint64_t syncs = faults->seen(FaultOp::kSync);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(drv.write(8 * i, drv.buffer(kLen, 0x79), kLen), VIRTIO_BLK_S_OK);  // writes still work
    EXPECT_EQ(drv.flush(), VIRTIO_BLK_S_IOERR) << "flush " << i << " after the failed one";
  }
  EXPECT_EQ(faults->seen(FaultOp::kSync), syncs);  // refused without asking the backend
  EXPECT_EQ(drv.dev->counters().flushes_poisoned.load(), 3u);

  // The driver resets the device (a guest reboot): durability can be promised again.
  drv.reset();
  drv.activate();
  ASSERT_EQ(drv.write(0, drv.buffer(kLen, 0x7a), kLen), VIRTIO_BLK_S_OK);
  EXPECT_EQ(drv.flush(), VIRTIO_BLK_S_OK);
  EXPECT_EQ(faults->seen(FaultOp::kSync), syncs + 1);
}

TEST_P(RawFaultTest, FlushInFlightWhenAnotherFailsIsNotOk) {
  // Two flushes with the backend at once; the first fails. The second's success proves
  // nothing (the kernel reports a writeback error to one fsync only), so it fails too.
  faults->add({.op = FaultOp::kSync, .first = faults->seen(FaultOp::kSync) + 1, .error = EIO});
  GuestAddress a = drv.post(VIRTIO_BLK_T_FLUSH, 0, GuestAddress(0), 0, false);
  GuestAddress b = drv.post(VIRTIO_BLK_T_FLUSH, 0, GuestAddress(0), 0, false);
  drv.wait(b);
  EXPECT_EQ(*drv.mem->read_obj<uint8_t>(a), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(*drv.mem->read_obj<uint8_t>(b), VIRTIO_BLK_S_IOERR);
}

INSTANTIATE_TEST_SUITE_P(Backends, BlkFaultTest,
                         ::testing::Values(Param{Format::kRaw, EngineKind::kSync},
                                           Param{Format::kRaw, EngineKind::kIoUring},
                                           Param{Format::kQcow2, EngineKind::kSync},
                                           Param{Format::kQcow2, EngineKind::kIoUring}),
                         param_name);
INSTANTIATE_TEST_SUITE_P(Engines, RawFaultTest,
                         ::testing::Values(Param{Format::kRaw, EngineKind::kSync},
                                           Param{Format::kRaw, EngineKind::kIoUring}),
                         param_name);

}  // namespace
}  // namespace microvm
