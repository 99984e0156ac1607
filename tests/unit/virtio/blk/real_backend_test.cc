// virtio-blk over the real raw-image backend (sync and io_uring engines): checks the two sides
// of the BlockBackend contract meet (completion fd readiness, batching, flush), on a temp file.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "devices/block/open_disk.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "virtio/blk/device.h"

namespace microvm {
namespace {

using testing::DriverBuffer;

class RealBackendTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  std::string path;
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(4 << 20);
  testing::DriverQueue dq{*mem, 128, GuestAddress(0x1000)};
  testing::GuestAllocator alloc{GuestAddress(0x100000), GuestAddress(4 << 20)};
  testing::FakeInterrupt irq;
  std::unique_ptr<EventLoop> loop = std::move(*EventLoop::create());
  EventFd kick = std::move(*EventFd::create());
  std::unique_ptr<BlkDevice> dev;

  void SetUp() override {
    char tmpl[] = "/tmp/microvm-virtio-blk-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 1 << 20), 0);
    ::close(fd);
    path = tmpl;
    DiskOptions o;
    o.path = path;
    o.engine = GetParam();
    auto backend = open_disk(o);
    ASSERT_TRUE(backend.has_value()) << backend.error().what;
    auto d = BlkDevice::create(std::move(*backend), BlkOptions{});
    ASSERT_TRUE(d.has_value()) << d.error().what;
    dev = std::move(*d);
    uint64_t f = dev->features() & ~feature_bit(VIRTIO_F_EVENT_IDX);  // an interrupt per batch
    dev->ack_features(f);
    ASSERT_TRUE(dev->activate(ActivationContext{*mem, irq, *loop, f, {dq.config(kick.fd())}}).has_value());
  }
  void TearDown() override {
    dev.reset();
    ::unlink(path.c_str());
  }
  GuestAddress add(uint32_t type, uint64_t sector, GuestAddress data, uint32_t len, bool writable) {
    GuestAddress hdr = alloc.alloc(16), status = alloc.alloc(1);
    EXPECT_TRUE(mem->write_obj(hdr, VirtioBlkOuthdr{type, 0, sector}).has_value());
    EXPECT_TRUE(mem->write_obj(status, uint8_t{0xee}).has_value());
    std::vector<DriverBuffer> bufs{{hdr, 16, false}};
    if (len) bufs.push_back({data, len, writable});
    bufs.push_back({status, 1, true});
    dq.add_chain(bufs);
    return status;
  }
  // Runs the loop until `n` used entries arrived (or a timeout).
  void wait_used(uint16_t n) {
    for (int i = 0; i < 500 && dq.used_idx() != n; ++i) ASSERT_TRUE(loop->run_once(10).has_value());
    ASSERT_EQ(dq.used_idx(), n);
  }
};

TEST_P(RealBackendTest, WriteFlushReadBack) {
  constexpr int kRequests = 32;
  std::vector<GuestAddress> statuses;
  for (int i = 0; i < kRequests; ++i) {
    GuestAddress data = alloc.alloc(4096);
    std::memset(mem->translate(data, 4096)->data(), 'a' + i % 26, 4096);
    statuses.push_back(add(VIRTIO_BLK_T_OUT, 8 * i, data, 4096, false));
  }
  kick.signal();
  wait_used(kRequests);
  statuses.push_back(add(VIRTIO_BLK_T_FLUSH, 0, {}, 0, false));
  kick.signal();
  wait_used(kRequests + 1);
  for (GuestAddress s : statuses) EXPECT_EQ(*mem->read_obj<uint8_t>(s), VIRTIO_BLK_S_OK);

  // Once everything completed, nothing stays readable: the completion fd must not spin.
  auto idle = loop->run_once(0);
  ASSERT_TRUE(idle.has_value());
  EXPECT_EQ(*idle, 0u);

  GuestAddress back = alloc.alloc(8192);
  GuestAddress st = add(VIRTIO_BLK_T_IN, 8 * 5, back, 8192, true);
  kick.signal();
  wait_used(kRequests + 2);
  EXPECT_EQ(*mem->read_obj<uint8_t>(st), VIRTIO_BLK_S_OK);
  auto got = *mem->translate(back, 8192);
  EXPECT_EQ(got[0], std::byte{'f'});
  EXPECT_EQ(got[4095], std::byte{'f'});
  EXPECT_EQ(got[4096], std::byte{'g'});

  // And the file holds the bytes.
  int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char c = 0;
  ASSERT_EQ(::pread(fd, &c, 1, 31 * 4096 + 100), 1);
  EXPECT_EQ(c, 'a' + 31 % 26);
  ::close(fd);
  EXPECT_EQ(value(dev->counters().write_bytes), kRequests * 4096u);
}

TEST_P(RealBackendTest, ResetWithRequestsInFlight) {
  for (int i = 0; i < 16; ++i) add(VIRTIO_BLK_T_IN, i, alloc.alloc(4096), 4096, true);
  kick.signal();
  ASSERT_TRUE(loop->run_once(0).has_value());  // the kick only: submissions, maybe no completions yet
  dev->reset();
  EXPECT_EQ(dev->in_flight(), 0u);
  auto idle = loop->run_once(0);
  ASSERT_TRUE(idle.has_value());
  EXPECT_EQ(*idle, 0u);
}

INSTANTIATE_TEST_SUITE_P(Engines, RealBackendTest, ::testing::Values(EngineKind::kSync, EngineKind::kAuto),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace microvm
