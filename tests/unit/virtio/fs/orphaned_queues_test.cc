// The rings of a virtio-fs device whose backend died: taken over where the backend's used
// index stopped, every request (pending or new) completed with a FUSE ENOTCONN reply.
#include "virtio/fs/orphaned_queues.h"

#include <gtest/gtest.h>

#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "virtio/fs/fuse_error_reply.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;
using testing::FakeInterrupt;

struct OrphanRig {
  OrphanRig() {
    MemoryLayoutEntry layout[] = {{GuestAddress(0), 2 << 20}};
    memory = std::move(*GuestMemory::create(layout, MemoryBacking::kMemfd));
    loop = std::move(*EventLoop::create());
    queue = std::make_unique<DriverQueue>(*memory, 16, GuestAddress(0x10000));
  }
  // A request with `unique` in its in-header and a 4 KiB reply buffer (or none).
  uint16_t add_request(uint64_t unique, bool reply = true) {
    GuestAddress in = GuestAddress(0x100000 + 0x2000 * unique);
    FuseInHeader h{sizeof(FuseInHeader), 1 /* LOOKUP */, unique, 1, 0, 0, 0, 0, 0};
    EXPECT_TRUE(memory->write_obj(in, h).has_value());
    DriverBuffer with_reply[] = {{in, sizeof h, false}, {in + 0x1000, 4096, true}};
    DriverBuffer no_reply[] = {{in, sizeof h, false}};
    return reply ? queue->add_chain(with_reply) : queue->add_chain(no_reply);
  }
  FuseOutHeader reply_of(uint64_t unique) {
    return *memory->read_obj<FuseOutHeader>(GuestAddress(0x100000 + 0x2000 * unique + 0x1000));
  }
  // What a backend that completed `head` would have left in the used ring.
  void backend_completes(uint16_t slot, uint16_t head) {
    VirtqUsedElem e{head, 16};
    ASSERT_TRUE(memory->write_obj(queue->used_addr() + 4 + 8 * slot, e).has_value());
    ASSERT_TRUE(memory->write_obj(queue->used_addr() + 2, uint16_t(slot + 1)).has_value());
  }
  std::unique_ptr<GuestMemory> memory;
  std::unique_ptr<EventLoop> loop;
  std::unique_ptr<DriverQueue> queue;
  FakeInterrupt irq;
  EventFd kick = std::move(*EventFd::create());
};

TEST(OrphanedQueues, ContinuesFromTheBackendsUsedIndexAndFailsEveryRequestWithEnotconn) {
  OrphanRig rig;
  uint16_t h1 = rig.add_request(1);
  uint16_t h2 = rig.add_request(2);
  uint16_t h3 = rig.add_request(3);
  rig.backend_completes(0, h1);  // the backend answered request 1, then died
  ASSERT_EQ(rig.queue->next_used()->id, h1);

  OrphanedRing ring{1, rig.queue->config(rig.kick.fd())};
  ring.config.ready = true;
  uint64_t features = 1ull << VIRTIO_F_VERSION_1;
  auto q = OrphanedQueues::adopt(*rig.memory, rig.irq, *rig.loop, features, std::span(&ring, 1), nullptr, "t");
  ASSERT_TRUE(q.has_value()) << q.error().what;
  // Requests 2 and 3 were pending: answered at adoption, in order, after the backend's entry.
  EXPECT_EQ(rig.queue->used_idx(), 3);
  auto u2 = rig.queue->next_used();
  auto u3 = rig.queue->next_used();
  ASSERT_TRUE(u2 && u3);
  EXPECT_EQ(u2->id, h2);
  EXPECT_EQ(u3->id, h3);
  EXPECT_EQ(u2->len, 16u);
  EXPECT_EQ(rig.reply_of(2).error, -ENOTCONN);
  EXPECT_EQ(rig.reply_of(2).unique, 2u);
  EXPECT_EQ(rig.reply_of(2).len, 16u);
  EXPECT_EQ(rig.reply_of(3).unique, 3u);
  EXPECT_GE(rig.irq.queue_count(1), 1u);
  EXPECT_EQ((*q)->failed_requests(), 2u);

  // A new request after adoption, through the doorbell: failed too. One without a reply
  // buffer (like FORGET) is completed with length 0.
  uint32_t irqs = rig.irq.queue_count(1);
  rig.add_request(4);
  uint16_t h5 = rig.add_request(5, /*reply=*/false);
  rig.kick.signal();
  for (int i = 0; i < 50 && rig.queue->used_idx() != 5; ++i) (void)rig.loop->run_once(10);
  ASSERT_EQ(rig.queue->used_idx(), 5);
  EXPECT_EQ(rig.reply_of(4).error, -ENOTCONN);
  (void)rig.queue->next_used();
  auto u5 = rig.queue->next_used();
  ASSERT_TRUE(u5.has_value());
  EXPECT_EQ(u5->id, h5);
  EXPECT_EQ(u5->len, 0u);
  EXPECT_GT(rig.irq.queue_count(1), irqs);
}

TEST(OrphanedQueues, AnUnusableRingStopsThatQueueOnly) {
  OrphanRig rig;
  OrphanedRing ring{1, rig.queue->config(rig.kick.fd())};
  ring.config.ready = true;
  auto q = OrphanedQueues::adopt(*rig.memory, rig.irq, *rig.loop, 1ull << VIRTIO_F_VERSION_1, std::span(&ring, 1),
                                 nullptr, "t");
  ASSERT_TRUE(q.has_value()) << q.error().what;
  rig.queue->set_avail_idx(1000);  // more than the queue size ahead: a corrupt ring
  rig.kick.signal();
  for (int i = 0; i < 5; ++i) (void)rig.loop->run_once(10);
  EXPECT_EQ(value((*q)->counters().ring_errors), 1u);
  rig.kick.signal();  // later doorbells are ignored, no crash
  for (int i = 0; i < 5; ++i) (void)rig.loop->run_once(10);
  EXPECT_EQ(value((*q)->counters().ring_errors), 1u);
}

TEST(OrphanedQueues, RingsOutsideRamAreRefused) {
  OrphanRig rig;
  OrphanedRing ring{1, rig.queue->config(rig.kick.fd())};
  ring.config.device = GuestAddress(0x1fffff0);  // the used ring runs past RAM
  EXPECT_FALSE(OrphanedQueues::adopt(*rig.memory, rig.irq, *rig.loop, 1ull << VIRTIO_F_VERSION_1, std::span(&ring, 1),
                                     nullptr, "t")
                   .has_value());
}

}  // namespace
}  // namespace microvm
