#include "virtio/blk/device.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "tests/testing/memory_block_backend.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;
using testing::MemoryBlockBackend;
using OpKind = MemoryBlockBackend::OpKind;

constexpr uint64_t kDiskBytes = 1 << 20;

// A request as the driver lays it out: header, data, status byte.
struct DriverRequest {
  GuestAddress hdr, data, status;
  uint32_t data_len = 0;
  uint16_t head = 0;
};

class BlkDeviceTest : public ::testing::Test {
 protected:
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(8 << 20);
  testing::GuestAllocator alloc{GuestAddress(0x100000), GuestAddress(8 << 20)};
  std::vector<std::unique_ptr<DriverQueue>> dqs;
  std::vector<EventFd> kicks;
  testing::FakeInterrupt irq;
  std::unique_ptr<EventLoop> loop = *EventLoop::create();
  MemoryBlockBackend* backend = nullptr;
  std::unique_ptr<BlkDevice> dev;

  void make(BlkOptions o = {}, bool backend_ro = false) {
    auto b = *MemoryBlockBackend::create(kDiskBytes, backend_ro);
    backend = b.get();
    for (size_t i = 0; i < kDiskBytes; ++i) backend->disk()[i] = std::byte(i * 7 + 3);
    auto d = BlkDevice::create(std::move(b), o);
    ASSERT_TRUE(d.has_value()) << d.error().what;
    dev = std::move(*d);
  }
  uint64_t default_features() const {
    return dev->features();  // the driver accepts everything offered
  }
  void activate(uint64_t features = ~0ull) {
    if (features == ~0ull) features = dev->features();
    std::vector<QueueConfig> qcs;
    for (uint16_t i = 0; i < dev->num_queues(); ++i) {
      dqs.push_back(std::make_unique<DriverQueue>(*mem, 64, GuestAddress(0x1000 + 0x4000 * i)));
      kicks.push_back(*EventFd::create());
      qcs.push_back(dqs.back()->config(kicks.back().fd()));
    }
    dev->ack_features(features);
    auto r = dev->activate(ActivationContext{*mem, irq, *loop, features, qcs});
    ASSERT_TRUE(r.has_value()) << r.error().what;
  }
  DriverRequest add(uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable, uint16_t q = 0,
                    bool publish = true) {
    DriverRequest r;
    r.hdr = alloc.alloc(16);
    EXPECT_TRUE(mem->write_obj(r.hdr, VirtioBlkOuthdr{type, 0, sector}).has_value());
    r.data_len = data_len;
    r.status = alloc.alloc(1);
    EXPECT_TRUE(mem->write_obj(r.status, uint8_t{0xee}).has_value());
    std::vector<DriverBuffer> bufs{{r.hdr, 16, false}};
    if (data_len) {
      r.data = alloc.alloc(data_len);
      bufs.push_back({r.data, data_len, data_writable});
    }
    bufs.push_back({r.status, 1, true});
    r.head = dqs[q]->add_chain(bufs, publish);
    return r;
  }
  DriverRequest add_read(uint64_t sector, uint32_t len, uint16_t q = 0) {
    return add(VIRTIO_BLK_T_IN, sector, len, true, q);
  }
  DriverRequest add_write(uint64_t sector, uint32_t len, uint8_t fill, uint16_t q = 0) {
    DriverRequest r = add(VIRTIO_BLK_T_OUT, sector, len, false, q);
    std::memset(mem->translate(r.data, len)->data(), fill, len);
    return r;
  }
  DriverRequest add_flush(uint16_t q = 0) { return add(VIRTIO_BLK_T_FLUSH, 0, 0, false, q); }
  DriverRequest add_segments(uint32_t type, std::vector<VirtioBlkDiscardWriteZeroes> segs) {
    DriverRequest r = add(type, 0, static_cast<uint32_t>(16 * segs.size()), false);
    for (size_t i = 0; i < segs.size(); ++i) EXPECT_TRUE(mem->write_obj(r.data + 16 * i, segs[i]).has_value());
    return r;
  }
  void kick(uint16_t q = 0) { kicks[q].signal(); }
  // Runs the loop until nothing is ready.
  void run() {
    for (int i = 0; i < 100; ++i) {
      auto n = loop->run_once(0);
      ASSERT_TRUE(n.has_value());
      if (*n == 0) return;
    }
  }
  uint8_t status(const DriverRequest& r) { return *mem->read_obj<uint8_t>(r.status); }
  std::optional<VirtqUsedElem> used(uint16_t q = 0) { return dqs[q]->next_used(); }
  std::span<std::byte> guest(GuestAddress a, uint32_t len) { return *mem->translate(a, len); }
  size_t count_ops(OpKind kind) {
    size_t n = 0;
    for (const auto& op : backend->submitted()) n += op.kind == kind;
    return n;
  }
};

TEST_F(BlkDeviceTest, FeaturesAndConfig) {
  BlkOptions o;
  o.queue_size = 128;
  make(o);
  uint64_t f = dev->features();
  EXPECT_EQ(dev->device_type(), VIRTIO_ID_BLOCK);
  for (unsigned bit : {VIRTIO_F_VERSION_1, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_BLK_F_FLUSH,
                       VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES})
    EXPECT_TRUE(has_feature(f, bit)) << bit;
  EXPECT_FALSE(has_feature(f, VIRTIO_BLK_F_RO));
  EXPECT_FALSE(has_feature(f, VIRTIO_BLK_F_MQ));

  VirtioBlkConfig cfg;
  dev->read_config(0, std::as_writable_bytes(std::span(&cfg, 1)));
  EXPECT_EQ(cfg.capacity, kDiskBytes / 512);
  EXPECT_EQ(cfg.seg_max, 126u);
  EXPECT_EQ(cfg.blk_size, 512u);
  EXPECT_EQ(cfg.num_queues, 1);
  EXPECT_GT(cfg.max_discard_sectors, 0u);
  EXPECT_GT(cfg.max_discard_seg, 0u);
  EXPECT_GT(cfg.max_write_zeroes_sectors, 0u);
  EXPECT_EQ(cfg.write_zeroes_may_unmap, 1);

  // Unaligned and partial reads; past the end reads as zero.
  uint32_t cap_hi = 0xffffffff;
  dev->read_config(4, std::as_writable_bytes(std::span(&cap_hi, 1)));
  EXPECT_EQ(cap_hi, 0u);
  uint16_t nq = 0;
  dev->read_config(34, std::as_writable_bytes(std::span(&nq, 1)));
  EXPECT_EQ(nq, 1);
  uint64_t past = ~0ull;
  dev->read_config(56, std::as_writable_bytes(std::span(&past, 1)));
  EXPECT_EQ(past, 1u);  // write_zeroes_may_unmap, then zeroes
  dev->read_config(4096, std::as_writable_bytes(std::span(&past, 1)));
  EXPECT_EQ(past, 0u);
}

TEST_F(BlkDeviceTest, ReadOnlyAndMultiQueueFeatures) {
  BlkOptions o;
  o.read_only = true;
  o.num_queues = 4;
  make(o);
  uint64_t f = dev->features();
  EXPECT_TRUE(has_feature(f, VIRTIO_BLK_F_RO));
  EXPECT_TRUE(has_feature(f, VIRTIO_BLK_F_MQ));
  EXPECT_FALSE(has_feature(f, VIRTIO_BLK_F_DISCARD));
  EXPECT_FALSE(has_feature(f, VIRTIO_BLK_F_WRITE_ZEROES));
  EXPECT_EQ(dev->config().num_queues, 4);
  EXPECT_EQ(dev->num_queues(), 4);

  make({}, /*backend_ro=*/true);  // a read-only backend forces RO
  EXPECT_TRUE(has_feature(dev->features(), VIRTIO_BLK_F_RO));
  EXPECT_TRUE(dev->read_only());
}

TEST_F(BlkDeviceTest, CreateRejectsBadOptions) {
  auto b = [] { return std::unique_ptr<BlockBackend>(*MemoryBlockBackend::create(kDiskBytes)); };
  BlkOptions o;
  o.serial = std::string(21, 'x');
  EXPECT_FALSE(BlkDevice::create(b(), o).has_value());
  o = {};
  o.num_queues = 0;
  EXPECT_FALSE(BlkDevice::create(b(), o).has_value());
  o = {};
  o.queue_size = 100;
  EXPECT_FALSE(BlkDevice::create(b(), o).has_value());
  EXPECT_FALSE(BlkDevice::create(nullptr, {}).has_value());
}

TEST_F(BlkDeviceTest, WriteThenReadBack) {
  make();
  activate();
  DriverRequest w = add_write(4, 1024, 0x5a);
  kick();
  run();
  EXPECT_EQ(status(w), VIRTIO_BLK_S_OK);
  auto u = used();
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->id, w.head);
  EXPECT_EQ(u->len, 1u);
  EXPECT_EQ(backend->disk()[4 * 512], std::byte{0x5a});
  EXPECT_EQ(backend->disk()[4 * 512 + 1023], std::byte{0x5a});
  EXPECT_EQ(backend->disk()[4 * 512 + 1024], std::byte((4 * 512 + 1024) * 7 + 3));

  dqs[0]->set_used_event(1);  // EVENT_IDX: the driver wants to hear about entry 1
  DriverRequest r = add_read(4, 1536);
  kick();
  run();
  EXPECT_EQ(status(r), VIRTIO_BLK_S_OK);
  u = used();
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->len, 1537u);
  auto data = guest(r.data, 1536);
  EXPECT_EQ(data[0], std::byte{0x5a});
  EXPECT_EQ(data[1023], std::byte{0x5a});
  EXPECT_EQ(data[1024], std::byte((4 * 512 + 1024) * 7 + 3));
  EXPECT_EQ(irq.queue_count(0), 2u);
  EXPECT_EQ(value(dev->counters().read_bytes), 1536u);
  EXPECT_EQ(value(dev->counters().write_bytes), 1024u);
  EXPECT_EQ(dev->in_flight(), 0u);
}

TEST_F(BlkDeviceTest, OneSubmissionFlushPerKick) {
  make();
  activate();
  std::vector<DriverRequest> reqs;
  for (int i = 0; i < 5; ++i) reqs.push_back(add_read(i, 512));
  kick();
  run();
  EXPECT_EQ(backend->flush_submissions_calls(), 1u);
  EXPECT_EQ(backend->submitted().size(), 5u);
  for (auto& r : reqs) EXPECT_EQ(status(r), VIRTIO_BLK_S_OK);
  EXPECT_EQ(irq.queue_count(0), 1u);
}

TEST_F(BlkDeviceTest, BackendErrorsBecomeIoerr) {
  make();
  activate();
  backend->fail_next(OpKind::kRead, EIO);
  DriverRequest r = add_read(0, 512);
  kick();
  run();
  EXPECT_EQ(status(r), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(used()->len, 1u);
  EXPECT_EQ(value(dev->counters().io_errors), 1u);

  backend->fail_next_submit(EAGAIN);
  DriverRequest w = add_write(0, 512, 1);
  kick();
  run();
  EXPECT_EQ(status(w), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(value(dev->counters().host_errors), 1u);
  EXPECT_EQ(dev->in_flight(), 0u);
  EXPECT_FALSE(dev->needs_reset());
}

TEST_F(BlkDeviceTest, ShortTransferIsAnError) {
  make();
  activate();
  backend->result_next(OpKind::kRead, 256);
  DriverRequest r = add_read(0, 512);
  kick();
  run();
  EXPECT_EQ(status(r), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(value(dev->counters().host_errors), 1u);
}

TEST_F(BlkDeviceTest, ReadOnlyDiskRefusesWrites) {
  BlkOptions o;
  o.read_only = true;
  make(o);
  activate();
  DriverRequest w = add_write(0, 512, 9);
  DriverRequest d = add_segments(VIRTIO_BLK_T_WRITE_ZEROES, {{0, 1, 0}});
  DriverRequest r = add_read(0, 512);
  DriverRequest f = add_flush();
  kick();
  run();
  EXPECT_EQ(status(w), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(status(d), VIRTIO_BLK_S_UNSUPP);  // WRITE_ZEROES is not even offered
  EXPECT_EQ(status(r), VIRTIO_BLK_S_OK);
  EXPECT_EQ(status(f), VIRTIO_BLK_S_OK);
  EXPECT_EQ(value(dev->counters().read_only_rejects), 1u);
  EXPECT_EQ(count_ops(OpKind::kWrite), 0u);
  EXPECT_EQ(backend->disk()[0], std::byte{3});
}

TEST_F(BlkDeviceTest, GetIdReturnsTheSerial) {
  BlkOptions o;
  o.serial = "disk-0001";
  make(o);
  activate();
  DriverRequest r = add(VIRTIO_BLK_T_GET_ID, 0, 20, true);
  std::memset(guest(r.data, 20).data(), 0xff, 20);
  kick();
  run();
  EXPECT_EQ(status(r), VIRTIO_BLK_S_OK);
  EXPECT_EQ(used()->len, 21u);
  auto id = guest(r.data, 20);
  EXPECT_EQ(std::memcmp(id.data(), "disk-0001", 9), 0);
  EXPECT_EQ(id[9], std::byte{0});
  EXPECT_EQ(id[19], std::byte{0});
}

TEST_F(BlkDeviceTest, UnsupportedTypeAndBadRequests) {
  make();
  activate();
  DriverRequest u = add(VIRTIO_BLK_T_GET_LIFETIME, 0, 0, false);
  DriverRequest past = add_read(kDiskBytes / 512, 512);
  kick();
  run();
  EXPECT_EQ(status(u), VIRTIO_BLK_S_UNSUPP);
  EXPECT_EQ(status(past), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(value(dev->counters().unsupported), 1u);
  EXPECT_EQ(value(dev->counters().bad_requests), 1u);
  EXPECT_TRUE(backend->submitted().empty());
}

TEST_F(BlkDeviceTest, BadChainCompletesWithZeroLength) {
  make();
  activate();
  GuestAddress b = alloc.alloc(16);
  dqs[0]->write_desc(5, {b.raw(), 16, VIRTQ_DESC_F_NEXT, 5});
  dqs[0]->push_avail(5);
  DriverRequest ok = add_read(0, 512);
  kick();
  run();
  auto u = used();
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->id, 5);
  EXPECT_EQ(u->len, 0u);
  EXPECT_EQ(status(ok), VIRTIO_BLK_S_OK);
  EXPECT_EQ(value(dev->counters().bad_chains), 1u);
}

TEST_F(BlkDeviceTest, NoStatusByteCompletesWithZeroLength) {
  make();
  activate();
  GuestAddress hdr = alloc.alloc(16);
  ASSERT_TRUE(mem->write_obj(hdr, VirtioBlkOuthdr{VIRTIO_BLK_T_IN, 0, 0}).has_value());
  DriverBuffer buf{hdr, 16, false};
  dqs[0]->add_chain(std::span(&buf, 1));
  kick();
  run();
  auto u = used();
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->len, 0u);
  EXPECT_EQ(value(dev->counters().bad_requests), 1u);
}

TEST_F(BlkDeviceTest, DiscardAndWriteZeroes) {
  make();
  activate();
  DriverRequest d = add_segments(VIRTIO_BLK_T_DISCARD, {{0, 2, 0}, {10, 1, 0}});
  DriverRequest z = add_segments(VIRTIO_BLK_T_WRITE_ZEROES, {{20, 1, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}});
  kick();
  run();
  EXPECT_EQ(status(d), VIRTIO_BLK_S_OK);
  EXPECT_EQ(status(z), VIRTIO_BLK_S_OK);
  EXPECT_EQ(count_ops(OpKind::kDiscard), 2u);
  ASSERT_EQ(count_ops(OpKind::kWriteZeroes), 1u);
  EXPECT_TRUE(backend->submitted().back().may_unmap);
  EXPECT_EQ(backend->disk()[1023], std::byte{0});
  EXPECT_EQ(backend->disk()[1024], std::byte(1024 * 7 + 3));
  EXPECT_EQ(backend->disk()[20 * 512 + 100], std::byte{0});
}

TEST_F(BlkDeviceTest, DiscardNotNegotiatedIsUnsupp) {
  make();
  activate(dev->features() & ~feature_bit(VIRTIO_BLK_F_DISCARD));
  DriverRequest d = add_segments(VIRTIO_BLK_T_DISCARD, {{0, 2, 0}});
  kick();
  run();
  EXPECT_EQ(status(d), VIRTIO_BLK_S_UNSUPP);
}

TEST_F(BlkDeviceTest, MultiSegmentFailureFailsTheRequestOnce) {
  make();
  activate();
  backend->fail_next(OpKind::kDiscard, EIO);
  DriverRequest d = add_segments(VIRTIO_BLK_T_DISCARD, {{0, 2, 0}, {10, 1, 0}, {30, 1, 0}});
  kick();
  run();
  EXPECT_EQ(status(d), VIRTIO_BLK_S_IOERR);
  EXPECT_TRUE(used().has_value());
  EXPECT_FALSE(used().has_value());
  EXPECT_EQ(dev->in_flight(), 0u);
}

// --- FLUSH ordering ---

TEST_F(BlkDeviceTest, FlushWithNoWritesOutstandingIsSubmittedAtOnce) {
  make();
  activate();
  backend->set_manual(true);
  DriverRequest f = add_flush();
  kick();
  run();
  EXPECT_EQ(count_ops(OpKind::kFlush), 1u);
  EXPECT_EQ(status(f), 0xee);  // not complete until the backend says so
  backend->complete_all();
  run();
  EXPECT_EQ(status(f), VIRTIO_BLK_S_OK);
}

TEST_F(BlkDeviceTest, FlushWaitsForEarlierWrites) {
  make();
  activate();
  backend->set_manual(true);
  DriverRequest w = add_write(0, 512, 1);
  kick();
  run();
  DriverRequest f = add_flush();
  kick();
  run();
  // The write is still in flight: the flush must not reach the backend yet.
  EXPECT_EQ(count_ops(OpKind::kFlush), 0u);
  EXPECT_EQ(value(dev->counters().flushes_held), 1u);
  EXPECT_EQ(dev->in_flight(), 2u);

  ASSERT_TRUE(backend->complete_next());  // the write
  run();
  EXPECT_EQ(status(w), VIRTIO_BLK_S_OK);
  ASSERT_EQ(count_ops(OpKind::kFlush), 1u);
  // Submitted strictly after the write executed.
  ASSERT_EQ(backend->executed().size(), 1u);
  EXPECT_EQ(backend->executed()[0].kind, OpKind::kWrite);
  EXPECT_EQ(status(f), 0xee);
  backend->complete_all();
  run();
  EXPECT_EQ(status(f), VIRTIO_BLK_S_OK);
  EXPECT_EQ(backend->executed().back().kind, OpKind::kFlush);
}

TEST_F(BlkDeviceTest, WriteAndFlushInOneBatch) {
  make();
  activate();
  backend->set_manual(true);
  add_write(0, 512, 1);
  add_write(8, 512, 2);
  DriverRequest f = add_flush();
  kick();
  run();
  EXPECT_EQ(count_ops(OpKind::kWrite), 2u);
  EXPECT_EQ(count_ops(OpKind::kFlush), 0u);
  backend->complete_next();
  run();
  EXPECT_EQ(count_ops(OpKind::kFlush), 0u);  // one write still outstanding
  backend->complete_next();
  run();
  EXPECT_EQ(count_ops(OpKind::kFlush), 1u);
  backend->complete_all();
  run();
  EXPECT_EQ(status(f), VIRTIO_BLK_S_OK);
}

TEST_F(BlkDeviceTest, LaterWritesDoNotHoldAnEarlierFlush) {
  make();
  activate();
  backend->set_manual(true);
  DriverRequest w1 = add_write(0, 512, 1);
  DriverRequest f1 = add_flush();
  DriverRequest w2 = add_write(8, 512, 2);
  DriverRequest f2 = add_flush();
  kick();
  run();
  EXPECT_EQ(count_ops(OpKind::kFlush), 0u);
  ASSERT_TRUE(backend->complete_tag(backend->submitted()[0].tag));  // w1
  run();
  EXPECT_EQ(count_ops(OpKind::kFlush), 1u);                         // f1 goes although w2 is outstanding
  ASSERT_TRUE(backend->complete_tag(backend->submitted()[1].tag));  // w2
  run();
  EXPECT_EQ(count_ops(OpKind::kFlush), 2u);
  backend->complete_all();
  run();
  for (auto* r : {&w1, &f1, &w2, &f2}) EXPECT_EQ(status(*r), VIRTIO_BLK_S_OK);
}

TEST_F(BlkDeviceTest, FlushWaitsForWritesOnOtherQueues) {
  BlkOptions o;
  o.num_queues = 2;
  make(o);
  activate();
  backend->set_manual(true);
  add_write(0, 512, 1, /*q=*/1);
  kick(1);
  run();
  DriverRequest f = add_flush(0);
  kick(0);
  run();
  EXPECT_EQ(count_ops(OpKind::kFlush), 0u);
  backend->complete_all();
  run();
  backend->complete_all();
  run();
  EXPECT_EQ(status(f), VIRTIO_BLK_S_OK);
  EXPECT_EQ(irq.queue_count(0), 1u);
  EXPECT_EQ(irq.queue_count(1), 1u);
}

TEST_F(BlkDeviceTest, FailedWriteStillReleasesTheFlush) {
  make();
  activate();
  backend->set_manual(true);
  backend->fail_next(OpKind::kWrite, EIO);
  DriverRequest w = add_write(0, 512, 1);
  DriverRequest f = add_flush();
  kick();
  run();
  backend->complete_all();
  run();
  backend->complete_all();
  run();
  EXPECT_EQ(status(w), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(status(f), VIRTIO_BLK_S_OK);
}

// --- in-flight tracking and reset ---

TEST_F(BlkDeviceTest, ResetDrainsTheBackendBeforeForgettingRequests) {
  make();
  activate();
  backend->set_manual(true);
  DriverRequest r1 = add_read(0, 512);
  DriverRequest r2 = add_read(1, 512);
  add_write(2, 512, 1);
  add_flush();  // held behind the write
  kick();
  run();
  EXPECT_EQ(dev->in_flight(), 4u);
  EXPECT_EQ(backend->held(), 3u);

  dev->reset();
  EXPECT_EQ(backend->drain_calls(), 1u);
  EXPECT_EQ(backend->held(), 0u);  // everything finished before reset returned
  EXPECT_EQ(dev->in_flight(), 0u);
  EXPECT_FALSE(dev->active());
  // Nothing is reported to the reset driver, and the held flush never reached the backend.
  EXPECT_EQ(dqs[0]->used_idx(), 0);
  EXPECT_EQ(status(r1), 0xee);
  EXPECT_EQ(count_ops(OpKind::kFlush), 0u);
  run();  // stale completions do not come back
  EXPECT_EQ(dqs[0]->used_idx(), 0);

  // Kicks go nowhere now.
  add_read(3, 512);
  kick();
  run();
  EXPECT_EQ(backend->submitted().size(), 3u);
  (void)r2;
}

TEST_F(BlkDeviceTest, ReactivatesWithFreshState) {
  make();
  activate();
  backend->set_manual(true);
  add_read(0, 512);
  kick();
  run();
  dev->reset();
  backend->set_manual(false);
  dqs.clear();
  kicks.clear();
  activate();
  DriverRequest r = add_read(1, 512);
  kick();
  run();
  EXPECT_EQ(status(r), VIRTIO_BLK_S_OK);
  auto u = used();
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->id, r.head);
  EXPECT_FALSE(used().has_value());
}

TEST_F(BlkDeviceTest, CompletionsOutOfOrder) {
  make();
  activate();
  backend->set_manual(true);
  DriverRequest a = add_read(0, 512);
  DriverRequest b = add_read(1, 512);
  kick();
  run();
  ASSERT_TRUE(backend->complete_tag(backend->submitted()[1].tag));
  run();
  auto u = used();
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->id, b.head);
  EXPECT_EQ(status(a), 0xee);
  backend->complete_all();
  run();
  EXPECT_EQ(used()->id, a.head);
}

TEST_F(BlkDeviceTest, YieldsAfterChainsPerKick) {
  BlkOptions o;
  o.chains_per_kick = 3;
  make(o);
  activate();
  std::vector<DriverRequest> reqs;
  for (int i = 0; i < 7; ++i) reqs.push_back(add(VIRTIO_BLK_T_GET_LIFETIME, 0, 0, false));  // refused at once
  kick();
  ASSERT_TRUE(loop->run_once(1000).has_value());
  EXPECT_EQ(dqs[0]->used_idx(), 3);
  run();
  EXPECT_EQ(dqs[0]->used_idx(), 7);
  for (auto& r : reqs) EXPECT_EQ(status(r), VIRTIO_BLK_S_UNSUPP);
}

// --- ring errors, notifications, multiqueue ---

TEST_F(BlkDeviceTest, BrokenRingEntersNeedsReset) {
  make();
  activate();
  dqs[0]->set_avail_idx(1000);
  kick();
  run();
  EXPECT_TRUE(dev->needs_reset());
  EXPECT_EQ(irq.config_count(), 1u);
  dev->reset();
  EXPECT_FALSE(dev->needs_reset());
}

TEST_F(BlkDeviceTest, EventIdxSuppressesInterrupts) {
  make();
  activate();
  dqs[0]->set_used_event(2);
  add_read(0, 512);
  kick();
  run();
  EXPECT_EQ(irq.queue_count(0), 0u);
  add_read(1, 512);
  add_read(2, 512);
  kick();
  run();
  EXPECT_EQ(irq.queue_count(0), 1u);
}

TEST_F(BlkDeviceTest, MultiQueueInterruptsTheRightQueue) {
  BlkOptions o;
  o.num_queues = 3;
  make(o);
  activate();
  DriverRequest r = add_read(0, 512, /*q=*/2);
  kick(2);
  run();
  EXPECT_EQ(status(r), VIRTIO_BLK_S_OK);
  EXPECT_EQ(irq.queue_count(2), 1u);
  EXPECT_EQ(irq.queue_count(0), 0u);
  EXPECT_TRUE(dqs[2]->next_used().has_value());
}

TEST_F(BlkDeviceTest, DisabledQueuesAreSkipped) {
  BlkOptions o;
  o.num_queues = 2;
  make(o);
  std::vector<QueueConfig> qcs;
  dqs.push_back(std::make_unique<DriverQueue>(*mem, 64, GuestAddress(0x1000)));
  kicks.push_back(*EventFd::create());
  qcs.push_back(dqs[0]->config(kicks[0].fd()));
  qcs.push_back(QueueConfig{});  // not ready
  ASSERT_TRUE(dev->activate(ActivationContext{*mem, irq, *loop, dev->features(), qcs}).has_value());
  DriverRequest r = add_read(0, 512);
  kick();
  run();
  EXPECT_EQ(status(r), VIRTIO_BLK_S_OK);
}

}  // namespace
}  // namespace microvm

namespace microvm {
namespace {

TEST_F(BlkDeviceTest, CountersCanBeVisited) {
  make();
  activate();
  add_read(0, 512);
  kick();
  run();
  std::map<std::string, uint64_t> seen;
  dev->counters().visit([&](const char* name, uint64_t v) { seen[name] = v; });
  EXPECT_EQ(seen.at("read_ops"), 1u);
  EXPECT_EQ(seen.at("read_bytes"), 512u);
  EXPECT_EQ(seen.at("kicks"), 1u);
  EXPECT_EQ(seen.at("chains"), 1u);
  EXPECT_EQ(seen.size(), 22u);
  EXPECT_EQ(seen.at("backend_busy"), 0u);
  EXPECT_EQ(seen.at("backend_swaps"), 0u);
}

}  // namespace
}  // namespace microvm
