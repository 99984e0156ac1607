// virtio-blk snapshot: quiesce completes what is in flight and flushes the disk, the saved
// device resumes the driver's queue in a fresh device, and hostile blobs are refused.
#include <gtest/gtest.h>

#include <cstring>

#include "base/event_fd.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "tests/testing/memory_block_backend.h"
#include "virtio/blk/device.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;
using testing::MemoryBlockBackend;
using OpKind = MemoryBlockBackend::OpKind;

constexpr uint64_t kDiskBytes = 1 << 20;

class BlkStateTest : public ::testing::Test {
 protected:
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(8 << 20);
  testing::GuestAllocator alloc{GuestAddress(0x100000), GuestAddress(8 << 20)};
  DriverQueue dq{*mem, 64, GuestAddress(0x1000)};
  EventFd kick = *EventFd::create();
  testing::FakeInterrupt irq;
  std::unique_ptr<EventLoop> loop = *EventLoop::create();

  struct Dev {
    MemoryBlockBackend* backend;
    std::unique_ptr<BlkDevice> dev;
  };
  Dev make(uint64_t disk_bytes = kDiskBytes, BlkOptions o = {}) {
    auto b = *MemoryBlockBackend::create(disk_bytes);
    MemoryBlockBackend* raw = b.get();
    return {raw, std::move(BlkDevice::create(std::move(b), o).value())};
  }
  Result<void> activate(BlkDevice& d) {
    uint64_t f = d.features() & ~feature_bit(VIRTIO_F_EVENT_IDX);  // every completion interrupts
    d.ack_features(f);
    return d.activate(ActivationContext{*mem, irq, *loop, f, {dq.config(kick.fd())}});
  }
  struct Req {
    GuestAddress status, data;
    uint16_t head;
  };
  Req post(uint32_t type, uint64_t sector, uint32_t len, bool writable, uint8_t fill = 0) {
    Req r{alloc.alloc(1), GuestAddress(0), 0};
    GuestAddress hdr = alloc.alloc(16);
    EXPECT_TRUE(mem->write_obj(hdr, VirtioBlkOuthdr{type, 0, sector}).has_value());
    EXPECT_TRUE(mem->write_obj(r.status, uint8_t{0xee}).has_value());
    std::vector<DriverBuffer> bufs{{hdr, 16, false}};
    if (len) {
      r.data = alloc.alloc(len);
      std::memset(mem->translate(r.data, len)->data(), fill, len);
      bufs.push_back({r.data, len, writable});
    }
    bufs.push_back({r.status, 1, true});
    r.head = dq.add_chain(bufs);
    kick.signal();
    return r;
  }
  void run() {
    for (int i = 0; i < 100; ++i) {
      auto n = loop->run_once(0);
      ASSERT_TRUE(n.has_value());
      if (*n == 0) return;
    }
  }
  uint8_t status(const Req& r) { return *mem->read_obj<uint8_t>(r.status); }
};

TEST_F(BlkStateTest, QuiesceCompletesInFlightRequestsThenFlushes) {
  auto d = make();
  ASSERT_TRUE(activate(*d.dev).has_value());
  d.backend->set_manual(true);  // operations stay in flight until completed
  Req w = post(VIRTIO_BLK_T_OUT, 8, 4096, false, 0x5a);
  Req f = post(VIRTIO_BLK_T_FLUSH, 0, 0, false);
  Req r = post(VIRTIO_BLK_T_IN, 8, 4096, true);
  run();
  EXPECT_EQ(d.dev->in_flight(), 3u);
  EXPECT_EQ(dq.used_idx(), 0);
  // Saving now would lose three requests: refused.
  EXPECT_FALSE(d.dev->save_state().has_value());

  ASSERT_TRUE(d.dev->quiesce().has_value());
  EXPECT_EQ(d.dev->in_flight(), 0u);
  EXPECT_EQ(dq.used_idx(), 3);
  EXPECT_EQ(status(w), VIRTIO_BLK_S_OK);
  EXPECT_EQ(status(f), VIRTIO_BLK_S_OK);
  EXPECT_EQ(status(r), VIRTIO_BLK_S_OK);
  EXPECT_EQ(static_cast<uint8_t>(mem->translate(r.data, 1)->front()), 0x5a);
  EXPECT_GE(irq.queue_count(0), 1u);
  // The last thing the disk did is a flush, after the guest's write.
  ASSERT_FALSE(d.backend->executed().empty());
  EXPECT_EQ(d.backend->executed().back().kind, OpKind::kFlush);
  size_t flushes = 0;
  for (const auto& op : d.backend->executed()) flushes += op.kind == OpKind::kFlush;
  EXPECT_EQ(flushes, 2u);  // the guest's and the quiesce's
  EXPECT_TRUE(d.dev->save_state().has_value());
}

TEST_F(BlkStateTest, QuiesceReportsAFailedFlush) {
  auto d = make();
  ASSERT_TRUE(activate(*d.dev).has_value());
  post(VIRTIO_BLK_T_OUT, 0, 512, false);
  run();
  d.backend->fail_next(OpKind::kFlush, EIO);
  auto q = d.dev->quiesce();
  ASSERT_FALSE(q.has_value());
  EXPECT_EQ(q.error().code, EIO);
}

TEST_F(BlkStateTest, RestoredDeviceContinuesTheQueue) {
  auto a = make();
  ASSERT_TRUE(activate(*a.dev).has_value());
  for (int i = 0; i < 5; ++i) post(VIRTIO_BLK_T_OUT, i, 512, false, static_cast<uint8_t>(i));
  run();
  while (dq.next_used()) {
  }
  ASSERT_EQ(dq.used_idx(), 5);
  ASSERT_TRUE(a.dev->quiesce().has_value());
  auto blob = a.dev->save_state();
  ASSERT_TRUE(blob.has_value()) << blob.error().what;
  a.dev->reset();

  auto b = make();
  b.backend->disk() = a.backend->disk();  // the image the restore reopens
  ASSERT_TRUE(b.dev->load_state(*blob).has_value());
  irq.clear();
  ASSERT_TRUE(activate(*b.dev).has_value());
  Req r = post(VIRTIO_BLK_T_IN, 3, 512, true);
  run();
  auto used = dq.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, r.head);
  EXPECT_EQ(dq.used_idx(), 6);
  EXPECT_FALSE(dq.next_used().has_value());  // none of the five old writes served again
  EXPECT_EQ(status(r), VIRTIO_BLK_S_OK);
  EXPECT_EQ(static_cast<uint8_t>(mem->translate(r.data, 1)->front()), 3);
  EXPECT_EQ(irq.queue_count(0), 1u);
  // Only the new read reached the new backend.
  ASSERT_EQ(b.backend->executed().size(), 1u);
  EXPECT_EQ(b.backend->executed()[0].kind, OpKind::kRead);
}

TEST_F(BlkStateTest, FlushPoisonIsCarried) {
  auto a = make();
  ASSERT_TRUE(activate(*a.dev).has_value());
  a.backend->fail_next(OpKind::kFlush, EIO);
  Req f = post(VIRTIO_BLK_T_FLUSH, 0, 0, false);
  run();
  ASSERT_EQ(status(f), VIRTIO_BLK_S_IOERR);
  while (dq.next_used()) {
  }
  ASSERT_TRUE(a.dev->quiesce().has_value());
  auto blob = a.dev->save_state().value();
  a.dev->reset();
  auto b = make();
  ASSERT_TRUE(b.dev->load_state(blob).has_value());
  ASSERT_TRUE(activate(*b.dev).has_value());
  Req f2 = post(VIRTIO_BLK_T_FLUSH, 0, 0, false);
  run();
  // Durability cannot be promised again until the driver resets the device.
  EXPECT_EQ(status(f2), VIRTIO_BLK_S_IOERR);
}

TEST_F(BlkStateTest, RefusesADifferentDiskAndHostileBlobs) {
  auto a = make();
  ASSERT_TRUE(activate(*a.dev).has_value());
  post(VIRTIO_BLK_T_OUT, 0, 512, false);
  run();
  ASSERT_TRUE(a.dev->quiesce().has_value());
  auto blob = a.dev->save_state().value();
  a.dev->reset();

  auto smaller = make(kDiskBytes / 2);
  auto r = smaller.dev->load_state(blob);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().what.find("sectors"), std::string::npos);
  BlkOptions ro;
  ro.read_only = true;
  EXPECT_FALSE(make(kDiskBytes, ro).dev->load_state(blob).has_value());
  BlkOptions two;
  two.num_queues = 2;
  EXPECT_FALSE(make(kDiskBytes, two).dev->load_state(blob).has_value());

  for (size_t len = 0; len < blob.size(); ++len) {
    auto d = make();
    EXPECT_FALSE(d.dev->load_state(std::span(blob).first(len)).has_value()) << len;
  }
  auto extra = blob;
  extra.push_back(std::byte{0});
  EXPECT_FALSE(make().dev->load_state(extra).has_value());
  // Acked features the device never offered.
  auto features = blob;
  features[7 + 7] = std::byte{0x80};  // bit 63 of acked_features
  EXPECT_FALSE(make().dev->load_state(features).has_value());
  // A used index that is not the ring's: the activation after the load refuses it.
  auto moved = blob;
  uint16_t idx = 9;
  std::memcpy(moved.data() + moved.size() - 6, &idx, 2);
  std::memcpy(moved.data() + moved.size() - 4, &idx, 2);
  auto d = make();
  ASSERT_TRUE(d.dev->load_state(moved).has_value());
  auto act = activate(*d.dev);
  ASSERT_FALSE(act.has_value());
  EXPECT_NE(act.error().what.find("used index"), std::string::npos);
}

}  // namespace
}  // namespace microvm
