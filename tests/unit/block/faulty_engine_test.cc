// FaultyEngine: the schedule hits exactly the operations it names, faulted operations complete
// through the wrapped engine like real failures, and the backends turn them into -errno
// results, never into success (raw and qcow2, over io_uring and sync).
#include "tests/testing/faulty_engine.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstring>

#include "devices/block/image_file.h"
#include "devices/block/qcow2/qcow2_backend.h"
#include "devices/block/qcow2/qcow2_chain.h"
#include "devices/block/qcow2/qcow2_create.h"
#include "devices/block/raw_backend.h"
#include "tests/unit/block/block_test_util.h"

namespace microvm {
namespace {

using testing_block::do_discard;
using testing_block::do_flush;
using testing_block::do_read;
using testing_block::do_write;
using testing_block::do_write_zeroes;
using testing_block::pattern;
using testing_block::read_file;
using testing_block::TempDir;

constexpr uint64_t kDisk = 1 << 20;

class FaultyEngineTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  TempDir dir;
  FaultyEngine* faults = nullptr;

  std::unique_ptr<FaultyEngine> engine() {
    auto inner = make_io_engine(GetParam(), nullptr, 32);
    EXPECT_TRUE(inner.has_value());
    auto e = FaultyEngine::create(std::move(*inner));
    EXPECT_TRUE(e.has_value());
    faults = e->get();
    return std::move(*e);
  }
  std::unique_ptr<RawBackend> raw() {
    std::string path = dir.file("raw.img");
    EXPECT_EQ(::close(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)), 0);
    EXPECT_EQ(::truncate(path.c_str(), kDisk), 0);
    auto file = open_image_file(path, false, CacheMode::kWriteback, true, nullptr);
    EXPECT_TRUE(file.has_value());
    return std::make_unique<RawBackend>(std::move(*file), engine(), false);
  }
  std::unique_ptr<Qcow2Backend> qcow2() {
    std::string path = dir.file("disk.qcow2");
    EXPECT_TRUE(qcow2::create_image(path, {.size = kDisk}).has_value());
    DiskOptions o;
    o.path = path;
    o.format = DiskFormat::kQcow2;
    auto img = qcow2::open_chain(o);
    EXPECT_TRUE(img.has_value());
    return std::make_unique<Qcow2Backend>(engine(), std::move(*img));
  }
};

TEST_P(FaultyEngineTest, NoRulesPassesEverythingThrough) {
  auto b = raw();
  auto data = pattern(8192, 1);
  EXPECT_EQ(do_write(*b, 4096, data.data(), data.size()), 8192);
  EXPECT_EQ(do_flush(*b), 0);
  std::vector<uint8_t> back(8192);
  EXPECT_EQ(do_read(*b, 4096, back.data(), back.size()), 8192);
  EXPECT_EQ(back, data);
  EXPECT_EQ(faults->seen(FaultOp::kWrite), 1u);
  EXPECT_EQ(faults->seen(FaultOp::kRead), 1u);
  EXPECT_EQ(faults->seen(FaultOp::kSync), 1u);
  EXPECT_EQ(faults->injected(), 0u);
}

TEST_P(FaultyEngineTest, HitsExactlyTheNthOperation) {
  auto b = raw();
  faults->add({.op = FaultOp::kRead, .first = 3, .count = 2, .error = EIO});
  uint8_t buf[512];
  EXPECT_EQ(do_read(*b, 0, buf, sizeof buf), 512);
  EXPECT_EQ(do_read(*b, 0, buf, sizeof buf), 512);
  EXPECT_EQ(do_read(*b, 0, buf, sizeof buf), -EIO);
  EXPECT_EQ(do_read(*b, 0, buf, sizeof buf), -EIO);
  EXPECT_EQ(do_read(*b, 0, buf, sizeof buf), 512);
  EXPECT_EQ(faults->injected(), 2u);
}

TEST_P(FaultyEngineTest, FailedWriteLeavesTheFileAlone) {
  auto b = raw();
  faults->add({.op = FaultOp::kWrite, .first = 1, .error = ENOSPC});
  auto data = pattern(4096, 2);
  EXPECT_EQ(do_write(*b, 0, data.data(), data.size()), -ENOSPC);
  EXPECT_EQ(do_flush(*b), 0);
  auto file = read_file(dir.file("raw.img"));
  EXPECT_EQ(file[0], 0);
  EXPECT_EQ(file[4095], 0);
}

TEST_P(FaultyEngineTest, PartialWriteLandsItsPrefixAndFails) {
  auto b = raw();
  faults->add({.op = FaultOp::kWrite, .first = 1, .action = FaultAction::kPartial, .error = ENOSPC, .bytes = 1024});
  auto data = pattern(4096, 3);
  EXPECT_EQ(do_write(*b, 0, data.data(), data.size()), -ENOSPC);
  auto file = read_file(dir.file("raw.img"));
  EXPECT_TRUE(std::equal(data.begin(), data.begin() + 1024, file.begin()));
  EXPECT_EQ(file[1024], 0);
}

TEST_P(FaultyEngineTest, PartialReportedAsSuccessShowsTheShortCount) {
  // What a contract-breaking engine would say; RawBackend passes it on and the device refuses
  // it (tests/unit/virtio/blk/fault_test.cc). qcow2 refuses it itself (below).
  auto b = raw();
  faults->add({.op = FaultOp::kWrite, .first = 1, .action = FaultAction::kPartial, .error = 0, .bytes = 1024});
  auto data = pattern(4096, 4);
  EXPECT_EQ(do_write(*b, 0, data.data(), data.size()), 1024);
}

TEST_P(FaultyEngineTest, SyncDiscardWriteZeroesAndRefusal) {
  auto b = raw();
  faults->add({.op = FaultOp::kSync, .first = 1, .error = EIO});
  faults->add({.op = FaultOp::kDiscard, .first = 1, .error = EIO});
  faults->add({.op = FaultOp::kWriteZeroes, .first = 1, .error = ENOSPC});
  faults->add({.op = FaultOp::kSync, .first = 2, .action = FaultAction::kRefuse, .error = EAGAIN});
  EXPECT_EQ(do_flush(*b), -EIO);
  EXPECT_EQ(do_flush(*b), -10000);  // the submit itself failed
  EXPECT_EQ(do_flush(*b), 0);
  EXPECT_EQ(do_discard(*b, 0, 4096), -EIO);
  EXPECT_EQ(do_write_zeroes(*b, 0, 4096, false), -ENOSPC);
  EXPECT_EQ(do_discard(*b, 0, 4096), 0);
}

TEST_P(FaultyEngineTest, DeadDiskStaysDead) {
  auto b = raw();
  faults->add({.op = FaultOp::kWrite, .first = 2, .count = FaultRule::kForever, .error = EIO});
  uint8_t buf[512] = {1};
  EXPECT_EQ(do_write(*b, 0, buf, sizeof buf), 512);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(do_write(*b, 0, buf, sizeof buf), -EIO);
}

TEST_P(FaultyEngineTest, Qcow2DataPathFaultsFailTheRequest) {
  auto b = qcow2();
  auto data = pattern(65536, 5);
  // First write allocates (synchronous, not through the engine); later ones are in place.
  ASSERT_EQ(do_write(*b, 0, data.data(), data.size()), 65536);
  ASSERT_EQ(do_flush(*b), 0);
  faults->add({.op = FaultOp::kRead, .first = faults->seen(FaultOp::kRead) + 1, .error = EIO});
  faults->add({.op = FaultOp::kWrite, .first = faults->seen(FaultOp::kWrite) + 1, .error = ENOSPC});
  std::vector<uint8_t> back(65536);
  EXPECT_EQ(do_read(*b, 0, back.data(), back.size()), -EIO);
  EXPECT_EQ(do_write(*b, 0, back.data(), back.size()), -ENOSPC);
  EXPECT_EQ(faults->injected(), 2u);
  EXPECT_EQ(do_read(*b, 0, back.data(), back.size()), 65536);
  EXPECT_EQ(back, data);
}

TEST_P(FaultyEngineTest, Qcow2RefusesAShortPieceReportedAsSuccess) {
  auto b = qcow2();
  auto data = pattern(8192, 6);
  ASSERT_EQ(do_write(*b, 0, data.data(), data.size()), 8192);
  faults->add({.op = FaultOp::kWrite,
               .first = faults->seen(FaultOp::kWrite) + 1,
               .action = FaultAction::kPartial,
               .error = 0,
               .bytes = 512});
  faults->add({.op = FaultOp::kRead,
               .first = faults->seen(FaultOp::kRead) + 1,
               .action = FaultAction::kPartial,
               .error = 0,
               .bytes = 512});
  EXPECT_EQ(do_write(*b, 0, data.data(), data.size()), -EIO);
  std::vector<uint8_t> back(8192);
  EXPECT_EQ(do_read(*b, 0, back.data(), back.size()), -EIO);
  EXPECT_EQ(faults->injected(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Engines, FaultyEngineTest, ::testing::Values(EngineKind::kSync, EngineKind::kIoUring),
                         [](const auto& p) { return std::string(to_string(p.param)); });

}  // namespace
}  // namespace microvm
