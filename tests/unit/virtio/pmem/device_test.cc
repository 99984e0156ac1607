#include "virtio/pmem/device.h"

#include <gtest/gtest.h>

#include <cstring>

#include "base/event_fd.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "virtio/pmem/pmem_spec.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;

struct CountingBackend : PmemBackend {
  int* flushes;
  bool* fail_next;
  CountingBackend(int* f, bool* fail) : flushes(f), fail_next(fail) {}
  Result<void> flush() override {
    ++*flushes;
    if (*fail_next) return fail(EIO, "disk on fire");
    return {};
  }
};

class PmemDeviceTest : public ::testing::Test {
 protected:
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(1 << 20);
  DriverQueue dq{*mem, 16, GuestAddress(0x1000)};
  testing::FakeInterrupt irq;
  std::unique_ptr<EventLoop> loop = *EventLoop::create();
  EventFd kick = *EventFd::create();
  int flushes = 0;
  bool fail_flush = false;
  std::unique_ptr<PmemDevice> dev;
  GuestAddress req{0x10000}, resp{0x10100};

  void SetUp() override {
    PmemOptions o;
    o.start = 0x100000000;
    o.size = 64 << 20;
    dev = std::move(*PmemDevice::create(std::make_unique<CountingBackend>(&flushes, &fail_flush), o));
    uint64_t f = feature_bit(VIRTIO_F_VERSION_1);
    dev->ack_features(f);
    ASSERT_TRUE(dev->activate(ActivationContext{*mem, irq, *loop, f, {dq.config(kick.fd())}}).has_value());
  }
  // Queues a request of `type` with a 4-byte response buffer, runs the device, returns the used element.
  std::optional<VirtqUsedElem> request(uint32_t type, uint32_t req_len = 4, uint32_t resp_len = 4) {
    EXPECT_TRUE(mem->write_obj(req, type).has_value());
    EXPECT_TRUE(mem->write_obj(resp, uint32_t{0xdeadbeef}).has_value());
    std::vector<DriverBuffer> bufs;
    if (req_len) bufs.push_back({req, req_len, false});
    if (resp_len) bufs.push_back({resp, resp_len, true});
    dq.add_chain(bufs);
    kick.signal();
    EXPECT_TRUE(loop->run_once(1000).has_value());
    return dq.next_used();
  }
  uint32_t response() { return *mem->read_obj<uint32_t>(resp); }
};

TEST_F(PmemDeviceTest, ConfigSpaceHoldsTheRegion) {
  EXPECT_EQ(dev->device_type(), VIRTIO_ID_PMEM);
  VirtioPmemConfig c{};
  dev->read_config(0, std::as_writable_bytes(std::span(&c, 1)));
  EXPECT_EQ(c.start, 0x100000000u);
  EXPECT_EQ(c.size, 64u << 20);
  uint32_t hi = 0;
  dev->read_config(4, std::as_writable_bytes(std::span(&hi, 1)));
  EXPECT_EQ(hi, 1u);  // the upper half of start
}

TEST_F(PmemDeviceTest, FlushReachesTheBackend) {
  auto used = request(VIRTIO_PMEM_REQ_TYPE_FLUSH);
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->len, 4u);
  EXPECT_EQ(response(), VIRTIO_PMEM_RESP_TYPE_OK);
  EXPECT_EQ(flushes, 1);
  EXPECT_EQ(value(dev->counters().flushes), 1u);
  EXPECT_GE(irq.queue_count(0), 1u);
}

TEST_F(PmemDeviceTest, FailedFlushAnswersEio) {
  fail_flush = true;
  auto used = request(VIRTIO_PMEM_REQ_TYPE_FLUSH);
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(response(), VIRTIO_PMEM_RESP_TYPE_EIO);
  EXPECT_EQ(value(dev->counters().flush_errors), 1u);
}

TEST_F(PmemDeviceTest, UnknownTypeAndShortRequestAnswerEioWithoutFlushing) {
  auto used = request(7);
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(response(), VIRTIO_PMEM_RESP_TYPE_EIO);
  used = request(VIRTIO_PMEM_REQ_TYPE_FLUSH, 2);
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(response(), VIRTIO_PMEM_RESP_TYPE_EIO);
  used = request(VIRTIO_PMEM_REQ_TYPE_FLUSH, 0);
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(response(), VIRTIO_PMEM_RESP_TYPE_EIO);
  EXPECT_EQ(flushes, 0);
  EXPECT_EQ(value(dev->counters().bad_requests), 3u);
}

TEST_F(PmemDeviceTest, NoRoomForTheResponseCompletesWithLengthZero) {
  auto used = request(VIRTIO_PMEM_REQ_TYPE_FLUSH, 4, 0);
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->len, 0u);
  used = request(VIRTIO_PMEM_REQ_TYPE_FLUSH, 4, 2);
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->len, 0u);
  EXPECT_EQ(flushes, 0);
  EXPECT_EQ(value(dev->counters().bad_requests), 2u);
}

}  // namespace
}  // namespace microvm
