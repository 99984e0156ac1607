#include "virtio/queue.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_memory.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;
using testing::GuestAllocator;

constexpr uint64_t kIndirect = feature_bit(VIRTIO_F_INDIRECT_DESC);
constexpr uint64_t kEventIdx = feature_bit(VIRTIO_F_EVENT_IDX);

class QueueTest : public ::testing::Test {
 protected:
  static constexpr uint16_t kSize = 8;
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(1 << 20);
  DriverQueue dq{*mem, kSize, GuestAddress(0x1000)};
  GuestAllocator alloc{GuestAddress(0x10000), GuestAddress(1 << 20)};

  Queue make(uint64_t features = kIndirect) {
    auto q = Queue::create(dq.config(), features);
    EXPECT_TRUE(q.has_value());
    EXPECT_TRUE(q->validate_rings(*mem).has_value());
    return std::move(*q);
  }
  // Pops a chain, failing the test if the ring is broken or empty.
  DescriptorChain pop(Queue& q) {
    auto r = q.pop(*mem);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().what);
    if (!r || !*r) {
      ADD_FAILURE() << "no chain";
      return DescriptorChain();
    }
    return std::move(**r);
  }
  GuestAddress fill(uint32_t len, uint8_t byte) {
    GuestAddress a = alloc.alloc(len);
    auto host = mem->translate(a, len);
    std::memset(host->data(), byte, len);
    return a;
  }
};

TEST_F(QueueTest, CreateRejectsBadSizesAndAlignment) {
  QueueConfig c = dq.config();
  c.size = 6;
  EXPECT_FALSE(Queue::create(c, 0).has_value());
  c.size = 0;
  EXPECT_FALSE(Queue::create(c, 0).has_value());
  c = dq.config();
  c.desc = GuestAddress(0x1008);
  EXPECT_FALSE(Queue::create(c, 0).has_value());
  c = dq.config();
  c.driver = GuestAddress(c.driver.raw() + 1);
  EXPECT_FALSE(Queue::create(c, 0).has_value());
  c = dq.config();
  c.device = GuestAddress(c.device.raw() + 2);
  EXPECT_FALSE(Queue::create(c, 0).has_value());
}

TEST_F(QueueTest, ValidateRingsRejectsRingsOutsideRam) {
  QueueConfig c = dq.config();
  c.device = GuestAddress((1 << 20) - 16);  // used ring runs off the end
  auto q = Queue::create(c, 0);
  ASSERT_TRUE(q.has_value());
  EXPECT_FALSE(q->validate_rings(*mem).has_value());
}

TEST_F(QueueTest, EmptyRingPopsNothing) {
  Queue q = make();
  auto r = q.pop(*mem);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->has_value());
}

TEST_F(QueueTest, PopsChainAndReturnsUsed) {
  Queue q = make();
  GuestAddress in = fill(16, 0xab);
  GuestAddress out = alloc.alloc(32);
  DriverBuffer bufs[] = {{in, 16, false}, {out, 32, true}};
  uint16_t head = dq.add_chain(bufs);

  DescriptorChain c = pop(q);
  ASSERT_TRUE(c.valid()) << c.error();
  EXPECT_EQ(c.head(), head);
  EXPECT_EQ(c.readable_bytes(), 16u);
  EXPECT_EQ(c.writable_bytes(), 32u);
  EXPECT_EQ(c.descriptor_count(), 2u);
  EXPECT_EQ(q.in_flight(), 1u);

  Reader r = c.reader();
  std::byte got[16];
  ASSERT_TRUE(r.read(got));
  EXPECT_EQ(got[7], std::byte{0xab});
  EXPECT_EQ(r.remaining(), 0u);
  Writer w = c.writer();
  ASSERT_TRUE(w.write_obj(uint32_t{0xdeadbeef}));
  EXPECT_EQ(*mem->read_obj<uint32_t>(out), 0xdeadbeefu);

  ASSERT_TRUE(q.add_used(*mem, head, 4).has_value());
  EXPECT_EQ(q.in_flight(), 0u);
  auto used = dq.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 4u);
  auto r2 = q.pop(*mem);
  ASSERT_TRUE(r2.has_value());
  EXPECT_FALSE(r2->has_value());
}

TEST_F(QueueTest, ChainsComeOutInAvailOrderAcrossIndexWrap) {
  Queue q = make();
  GuestAddress b = alloc.alloc(8);
  for (int round = 0; round < 3 * 65536 / kSize / 64; ++round) {
    for (int i = 0; i < kSize; ++i) {
      DriverBuffer buf{b, 8, true};
      dq.add_chain(std::span(&buf, 1));
    }
    for (int i = 0; i < kSize; ++i) {
      DescriptorChain c = pop(q);
      ASSERT_TRUE(c.valid());
      ASSERT_TRUE(q.add_used(*mem, c.head(), 0).has_value());
      ASSERT_TRUE(dq.next_used().has_value());
    }
  }
  // Keep going until the 16-bit indices wrap.
  for (int i = 0; i < 70000; ++i) {
    DriverBuffer buf{b, 8, true};
    dq.add_chain(std::span(&buf, 1));
    DescriptorChain c = pop(q);
    ASSERT_TRUE(c.valid());
    ASSERT_TRUE(q.add_used(*mem, c.head(), 0).has_value());
    ASSERT_TRUE(dq.next_used().has_value());
  }
  EXPECT_FALSE(q.broken());
}

TEST_F(QueueTest, DescriptorLoopIsABadChainNotABrokenRing) {
  Queue q = make();
  GuestAddress b = alloc.alloc(8);
  dq.write_desc(0, {b.raw(), 8, VIRTQ_DESC_F_NEXT, 1});
  dq.write_desc(1, {b.raw(), 8, VIRTQ_DESC_F_NEXT, 0});
  dq.push_avail(0);
  DescriptorChain c = pop(q);
  EXPECT_FALSE(c.valid());
  EXPECT_NE(std::string(c.error()).find("loop"), std::string::npos);
  EXPECT_EQ(c.readable_bytes(), 0u);
  EXPECT_TRUE(c.readable().empty());
  ASSERT_TRUE(q.add_used(*mem, c.head(), 0).has_value());

  // The queue keeps working.
  dq.write_desc(2, {b.raw(), 8, 0, 0});
  dq.push_avail(2);
  DescriptorChain ok = pop(q);
  EXPECT_TRUE(ok.valid());
}

TEST_F(QueueTest, PopIntoReusesOneChainForLongShortAndBadChains) {
  Queue q = make();
  DescriptorChain c;
  // A chain longer than the inline buffers, then a short one, a loop, a short one again: each
  // pop_into() leaves exactly the popped chain's buffers, whatever the object held before.
  std::vector<DriverBuffer> longer;
  for (int i = 0; i < 7; ++i) longer.push_back({alloc.alloc(16), 16, true});
  uint16_t h1 = dq.add_chain(longer);
  auto r = q.pop_into(*mem, c);
  ASSERT_TRUE(r.has_value() && *r);
  EXPECT_TRUE(c.valid());
  EXPECT_EQ(c.head(), h1);
  EXPECT_EQ(c.writable().size(), 7u);
  EXPECT_EQ(c.writable_bytes(), 7u * 16);
  ASSERT_TRUE(q.add_used(*mem, h1, 0).has_value());
  ASSERT_TRUE(dq.next_used().has_value());  // frees the descriptors

  GuestAddress in = fill(8, 0x5a);
  DriverBuffer two[] = {{in, 8, false}, {alloc.alloc(4), 4, true}};
  uint16_t h2 = dq.add_chain(two);
  r = q.pop_into(*mem, c);
  ASSERT_TRUE(r.has_value() && *r);
  ASSERT_TRUE(c.valid());
  EXPECT_EQ(c.head(), h2);
  EXPECT_EQ(c.readable().size(), 1u);
  EXPECT_EQ(c.writable().size(), 1u);
  EXPECT_EQ(c.readable_bytes(), 8u);
  EXPECT_EQ(c.writable_bytes(), 4u);
  EXPECT_EQ(c.descriptor_count(), 2u);
  std::byte got[8];
  ASSERT_TRUE(c.reader().read(got));
  EXPECT_EQ(got[3], std::byte{0x5a});
  ASSERT_TRUE(q.add_used(*mem, h2, 0).has_value());
  ASSERT_TRUE(dq.next_used().has_value());

  GuestAddress b = alloc.alloc(8);
  DriverBuffer one[] = {{b, 8, true}};
  uint16_t h3 = dq.add_chain(one);
  dq.write_desc(h3, {b.raw(), 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, h3});  // a loop
  r = q.pop_into(*mem, c);
  ASSERT_TRUE(r.has_value() && *r);
  EXPECT_FALSE(c.valid());
  EXPECT_TRUE(c.readable().empty());
  EXPECT_TRUE(c.writable().empty());
  EXPECT_EQ(c.writable_bytes(), 0u);
  ASSERT_TRUE(q.add_used(*mem, h3, 0).has_value());

  r = q.pop_into(*mem, c);  // empty ring: the chain is left alone, false
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(*r);
}

TEST_F(QueueTest, SelfLoopOnOneDescriptor) {
  Queue q = make();
  GuestAddress b = alloc.alloc(8);
  dq.write_desc(3, {b.raw(), 8, VIRTQ_DESC_F_NEXT, 3});
  dq.push_avail(3);
  EXPECT_FALSE(pop(q).valid());
}

TEST_F(QueueTest, ChainOfExactlyQueueSizeIsAccepted) {
  Queue q = make();
  GuestAddress b = alloc.alloc(8);
  std::vector<DriverBuffer> bufs(kSize, DriverBuffer{b, 8, false});
  dq.add_chain(bufs);
  DescriptorChain c = pop(q);
  EXPECT_TRUE(c.valid()) << c.error();
  EXPECT_EQ(c.descriptor_count(), kSize);
}

TEST_F(QueueTest, NextIndexOutOfRangeIsABadChain) {
  Queue q = make();
  GuestAddress b = alloc.alloc(8);
  dq.write_desc(0, {b.raw(), 8, VIRTQ_DESC_F_NEXT, kSize});
  dq.push_avail(0);
  EXPECT_FALSE(pop(q).valid());
}

TEST_F(QueueTest, HeadIndexOutOfRangeBreaksTheRing) {
  Queue q = make();
  dq.push_avail(kSize);
  auto r = q.pop(*mem);
  EXPECT_FALSE(r.has_value());
  EXPECT_TRUE(q.broken());
  EXPECT_FALSE(q.pop(*mem).has_value());  // stays broken
}

TEST_F(QueueTest, AvailIndexRunningAwayBreaksTheRing) {
  Queue q = make();
  dq.set_avail_idx(kSize + 1);
  EXPECT_FALSE(q.pop(*mem).has_value());
  EXPECT_TRUE(q.broken());
}

TEST_F(QueueTest, AvailIndexExactlyQueueSizeAheadIsFine) {
  Queue q = make();
  GuestAddress b = alloc.alloc(8);
  for (int i = 0; i < kSize; ++i) {
    DriverBuffer buf{b, 8, false};
    dq.add_chain(std::span(&buf, 1));
  }
  for (int i = 0; i < kSize; ++i) EXPECT_TRUE(pop(q).valid());
  EXPECT_EQ(q.in_flight(), kSize);
}

TEST_F(QueueTest, HeadReusedWhileInFlightBreaksTheRing) {
  Queue q = make();
  GuestAddress b = alloc.alloc(8);
  dq.write_desc(0, {b.raw(), 8, 0, 0});
  dq.push_avail(0);
  DescriptorChain c = pop(q);
  ASSERT_TRUE(c.valid());
  dq.push_avail(0);  // offered again before the device returned it
  EXPECT_FALSE(q.pop(*mem).has_value());
  EXPECT_TRUE(q.broken());
}

TEST_F(QueueTest, HeadReusedAfterCompletionIsFine) {
  Queue q = make();
  GuestAddress b = alloc.alloc(8);
  dq.write_desc(0, {b.raw(), 8, 0, 0});
  dq.push_avail(0);
  DescriptorChain c = pop(q);
  ASSERT_TRUE(q.add_used(*mem, 0, 0).has_value());
  dq.push_avail(0);
  EXPECT_TRUE(pop(q).valid());
}

TEST_F(QueueTest, AddUsedForAHeadNotInFlightFailsWithoutBreaking) {
  Queue q = make();
  EXPECT_FALSE(q.add_used(*mem, 0, 0).has_value());
  EXPECT_FALSE(q.add_used(*mem, kSize, 0).has_value());
  EXPECT_FALSE(q.broken());
  EXPECT_EQ(dq.used_idx(), 0);
}

// A mergeable RX frame spans several chains: the driver sees all of them or none.
TEST_F(QueueTest, AddUsedManyPublishesTheIndexOnceAfterAllElements) {
  Queue q = make();
  uint16_t heads[3];
  for (auto& h : heads) {
    DriverBuffer b[] = {{alloc.alloc(64), 64, true}};
    h = dq.add_chain(b);
  }
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pop(q).valid());
  Queue::UsedElement elems[] = {{heads[0], 64}, {heads[1], 64}, {heads[2], 10}};
  ASSERT_TRUE(q.add_used_many(*mem, elems).has_value());
  EXPECT_EQ(dq.used_idx(), 3);
  EXPECT_EQ(q.in_flight(), 0u);
  for (const auto& e : elems) {
    auto used = dq.next_used();
    ASSERT_TRUE(used.has_value());
    EXPECT_EQ(used->id, e.head);
    EXPECT_EQ(used->len, e.len);
  }
}

TEST_F(QueueTest, AddUsedManyWithADuplicateOrUnknownHeadReturnsNothing) {
  Queue q = make();
  uint16_t heads[2];
  for (auto& h : heads) {
    DriverBuffer b[] = {{alloc.alloc(64), 64, true}};
    h = dq.add_chain(b);
  }
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(pop(q).valid());
  Queue::UsedElement dup[] = {{heads[0], 1}, {heads[0], 1}};
  EXPECT_FALSE(q.add_used_many(*mem, dup).has_value());
  Queue::UsedElement unknown[] = {{heads[1], 1}, {static_cast<uint16_t>(kSize - 1), 1}};
  EXPECT_FALSE(q.add_used_many(*mem, unknown).has_value());
  EXPECT_EQ(dq.used_idx(), 0);
  EXPECT_EQ(q.in_flight(), 2u);
  EXPECT_FALSE(q.broken());
  // Both heads are still in flight and can be returned properly.
  Queue::UsedElement good[] = {{heads[1], 2}, {heads[0], 3}};
  ASSERT_TRUE(q.add_used_many(*mem, good).has_value());
  EXPECT_EQ(dq.used_idx(), 2);
}

TEST_F(QueueTest, ReadableAfterWritableIsABadChain) {
  Queue q = make();
  GuestAddress b = alloc.alloc(8);
  DriverBuffer bufs[] = {{b, 8, true}, {b, 8, false}};
  dq.add_chain(bufs);
  DescriptorChain c = pop(q);
  EXPECT_FALSE(c.valid());
}

TEST_F(QueueTest, ZeroLengthDescriptorsAreSkippedWhateverTheirAddress) {
  Queue q = make();
  GuestAddress b = fill(8, 1);
  DriverBuffer bufs[] = {{GuestAddress(~0ull), 0, false}, {b, 8, false}, {GuestAddress(1ull << 50), 0, true}};
  dq.add_chain(bufs);
  DescriptorChain c = pop(q);
  ASSERT_TRUE(c.valid()) << c.error();
  EXPECT_EQ(c.readable().size(), 1u);
  EXPECT_EQ(c.writable().size(), 0u);
  EXPECT_EQ(c.descriptor_count(), 3u);
}

TEST_F(QueueTest, HugeLengthIsABadChain) {
  Queue q = make();
  DriverBuffer buf{GuestAddress(0x10000), 0xffffffff, true};
  dq.add_chain(std::span(&buf, 1));
  EXPECT_FALSE(pop(q).valid());
}

TEST_F(QueueTest, BufferCrossingTheEndOfRamIsABadChain) {
  Queue q = make();
  DriverBuffer buf{GuestAddress((1 << 20) - 4), 8, true};
  dq.add_chain(std::span(&buf, 1));
  EXPECT_FALSE(pop(q).valid());
  DriverBuffer wrap{GuestAddress(~0ull - 3), 8, true};  // address + len wraps around 2^64
  ASSERT_TRUE(q.add_used(*mem, 0, 0).has_value());
  dq.add_chain(std::span(&wrap, 1));
  EXPECT_FALSE(pop(q).valid());
}

TEST_F(QueueTest, BufferOutsideRamIsABadChain) {
  Queue q = make();
  DriverBuffer buf{GuestAddress(1ull << 40), 8, true};
  dq.add_chain(std::span(&buf, 1));
  EXPECT_FALSE(pop(q).valid());
}

TEST(QueueTwoRegionTest, BufferMayNotCrossARegionBoundary) {
  // Two adjacent regions: contiguous in guest-physical space, not in host memory.
  auto mem = testing::make_two_region_memory(1 << 20, GuestAddress(1 << 20), 1 << 20);
  DriverQueue dq(*mem, 8, GuestAddress(0x1000));
  auto q = Queue::create(dq.config(), 0);
  ASSERT_TRUE(q.has_value());
  DriverBuffer crossing{GuestAddress((1 << 20) - 8), 16, true};
  dq.add_chain(std::span(&crossing, 1));
  auto c = q->pop(*mem);
  ASSERT_TRUE(c.has_value() && c->has_value());
  EXPECT_FALSE((*c)->valid());
  ASSERT_TRUE(q->add_used(*mem, (*c)->head(), 0).has_value());

  // Entirely inside the second region: fine, and the bytes land there.
  DriverBuffer second{GuestAddress((1 << 20) + 8), 16, true};
  dq.add_chain(std::span(&second, 1));
  auto c2 = q->pop(*mem);
  ASSERT_TRUE(c2.has_value() && c2->has_value());
  ASSERT_TRUE((*c2)->valid());
  Writer w = (*c2)->writer();
  ASSERT_TRUE(w.write_obj(uint64_t{42}));
  EXPECT_EQ(*mem->read_obj<uint64_t>(GuestAddress((1 << 20) + 8)), 42u);
}

TEST(QueueTwoRegionTest, BufferInTheHoleIsABadChain) {
  auto mem = testing::make_two_region_memory(1 << 20, GuestAddress(4 << 20), 1 << 20);
  DriverQueue dq(*mem, 8, GuestAddress(0x1000));
  auto q = Queue::create(dq.config(), 0);
  ASSERT_TRUE(q.has_value());
  DriverBuffer hole{GuestAddress(2 << 20), 16, false};
  dq.add_chain(std::span(&hole, 1));
  auto c = q->pop(*mem);
  ASSERT_TRUE(c.has_value() && c->has_value());
  EXPECT_FALSE((*c)->valid());
}

TEST(QueueBigTest, ChainCarryingMoreThan4GiBIsRefused) {
  // 256 descriptors aliasing one 17 MiB buffer: 4.25 GiB in one chain, with little memory.
  auto mem = testing::make_fake_memory(32 << 20);
  DriverQueue dq(*mem, 256, GuestAddress(0x1000));
  auto q = Queue::create(dq.config(), 0);
  ASSERT_TRUE(q.has_value());
  std::vector<DriverBuffer> bufs(256, DriverBuffer{GuestAddress(1 << 20), 0x1100000u, true});
  dq.add_chain(bufs);
  auto c = q->pop(*mem);
  ASSERT_TRUE(c.has_value() && c->has_value());
  EXPECT_FALSE((*c)->valid());
  ASSERT_TRUE(q->add_used(*mem, (*c)->head(), 0).has_value());
  ASSERT_TRUE(dq.next_used().has_value());

  // 240 of them (3.98 GiB) are fine.
  bufs.resize(240);
  dq.add_chain(bufs);
  auto ok = q->pop(*mem);
  ASSERT_TRUE(ok.has_value() && ok->has_value());
  EXPECT_TRUE((*ok)->valid()) << (*ok)->error();
  EXPECT_EQ((*ok)->writable_bytes(), 240ull * 0x1100000u);
}

// --- indirect descriptors (§2.7.5.3) ---

TEST_F(QueueTest, IndirectChainIsWalked) {
  Queue q = make();
  GuestAddress in = fill(4, 7);
  GuestAddress out = alloc.alloc(64);
  GuestAddress table = alloc.alloc(3 * 16);
  DriverBuffer bufs[] = {{in, 4, false}, {out, 32, true}, {out + 32, 32, true}};
  uint16_t head = dq.add_indirect_chain(bufs, table);
  DescriptorChain c = pop(q);
  ASSERT_TRUE(c.valid()) << c.error();
  EXPECT_EQ(c.head(), head);
  EXPECT_EQ(c.readable_bytes(), 4u);
  EXPECT_EQ(c.writable_bytes(), 64u);
  EXPECT_EQ(c.writable().size(), 2u);
}

TEST_F(QueueTest, IndirectWithoutTheFeatureIsABadChain) {
  Queue q = make(0);
  GuestAddress table = alloc.alloc(16);
  DriverBuffer bufs[] = {{alloc.alloc(8), 8, true}};
  dq.add_indirect_chain(bufs, table);
  EXPECT_FALSE(pop(q).valid());
}

TEST_F(QueueTest, DirectDescriptorsFollowedByIndirectAreAccepted) {
  Queue q = make();
  GuestAddress hdr = fill(16, 1);
  GuestAddress table = alloc.alloc(16);
  GuestAddress out = alloc.alloc(8);
  dq.write_indirect_desc(table, 0, {out.raw(), 8, VIRTQ_DESC_F_WRITE, 0});
  dq.write_desc(0, {hdr.raw(), 16, VIRTQ_DESC_F_NEXT, 1});
  dq.write_desc(1, {table.raw(), 16, VIRTQ_DESC_F_INDIRECT, 0});
  dq.push_avail(0);
  DescriptorChain c = pop(q);
  ASSERT_TRUE(c.valid()) << c.error();
  EXPECT_EQ(c.readable_bytes(), 16u);
  EXPECT_EQ(c.writable_bytes(), 8u);
}

TEST_F(QueueTest, IndirectWithNextIsABadChain) {
  Queue q = make();
  GuestAddress table = alloc.alloc(16);
  dq.write_indirect_desc(table, 0, {alloc.alloc(8).raw(), 8, VIRTQ_DESC_F_WRITE, 0});
  dq.write_desc(0, {table.raw(), 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1});
  dq.write_desc(1, {alloc.alloc(8).raw(), 8, VIRTQ_DESC_F_WRITE, 0});
  dq.push_avail(0);
  EXPECT_FALSE(pop(q).valid());
}

TEST_F(QueueTest, NestedIndirectIsABadChain) {
  Queue q = make();
  GuestAddress inner = alloc.alloc(16);
  GuestAddress outer = alloc.alloc(16);
  dq.write_indirect_desc(inner, 0, {alloc.alloc(8).raw(), 8, VIRTQ_DESC_F_WRITE, 0});
  dq.write_indirect_desc(outer, 0, {inner.raw(), 16, VIRTQ_DESC_F_INDIRECT, 0});
  dq.write_desc(0, {outer.raw(), 16, VIRTQ_DESC_F_INDIRECT, 0});
  dq.push_avail(0);
  DescriptorChain c = pop(q);
  EXPECT_FALSE(c.valid());
  EXPECT_NE(std::string(c.error()).find("nested"), std::string::npos);
}

TEST_F(QueueTest, IndirectTableLengthsAreChecked) {
  Queue q = make();
  GuestAddress table = alloc.alloc(16 * (kSize + 1));
  for (uint16_t i = 0; i <= kSize; ++i)
    dq.write_indirect_desc(table, i, {alloc.alloc(8).raw(), 8, VIRTQ_DESC_F_WRITE, 0});
  for (uint32_t len : {0u, 8u, 17u, 16u * (kSize + 1)}) {
    dq.write_desc(0, {table.raw(), len, VIRTQ_DESC_F_INDIRECT, 0});
    dq.push_avail(0);
    DescriptorChain c = pop(q);
    EXPECT_FALSE(c.valid()) << "len " << len;
    ASSERT_TRUE(q.add_used(*mem, 0, 0).has_value());
  }
  // A full queue-size table is fine.
  dq.write_desc(0, {table.raw(), 16u * kSize, VIRTQ_DESC_F_INDIRECT, 0});
  dq.push_avail(0);
  EXPECT_TRUE(pop(q).valid());
}

TEST_F(QueueTest, IndirectTableOutsideRamIsABadChain) {
  Queue q = make();
  dq.write_desc(0, {(1 << 20) - 16, 32, VIRTQ_DESC_F_INDIRECT, 0});
  dq.push_avail(0);
  EXPECT_FALSE(pop(q).valid());
}

TEST_F(QueueTest, IndirectLoopAndOutOfRangeNextAreBadChains) {
  Queue q = make();
  GuestAddress table = alloc.alloc(32);
  GuestAddress b = alloc.alloc(8);
  dq.write_indirect_desc(table, 0, {b.raw(), 8, VIRTQ_DESC_F_NEXT, 1});
  dq.write_indirect_desc(table, 1, {b.raw(), 8, VIRTQ_DESC_F_NEXT, 0});
  dq.write_desc(0, {table.raw(), 32, VIRTQ_DESC_F_INDIRECT, 0});
  dq.push_avail(0);
  EXPECT_FALSE(pop(q).valid());
  ASSERT_TRUE(q.add_used(*mem, 0, 0).has_value());

  dq.write_indirect_desc(table, 1, {b.raw(), 8, VIRTQ_DESC_F_NEXT, 2});  // table has 2 entries
  dq.push_avail(0);
  EXPECT_FALSE(pop(q).valid());
}

// --- notification suppression ---

TEST_F(QueueTest, NoInterruptFlagSuppressesWithoutEventIdx) {
  Queue q = make(0);
  GuestAddress b = alloc.alloc(8);
  DriverBuffer buf{b, 8, true};
  auto run_one = [&] {
    dq.add_chain(std::span(&buf, 1));
    DescriptorChain c = pop(q);
    EXPECT_TRUE(q.add_used(*mem, c.head(), 0).has_value());
    dq.next_used();
  };
  auto r = q.needs_notification(*mem);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(*r);  // nothing used yet
  run_one();
  EXPECT_TRUE(*q.needs_notification(*mem));
  EXPECT_FALSE(*q.needs_notification(*mem));  // nothing new since
  dq.set_avail_flags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  run_one();
  EXPECT_FALSE(*q.needs_notification(*mem));
}

TEST_F(QueueTest, EventIdxInterruptsOnlyWhenCrossingUsedEvent) {
  Queue q = make(kEventIdx);
  GuestAddress b = alloc.alloc(8);
  DriverBuffer buf{b, 8, true};
  auto complete = [&](int n) {
    for (int i = 0; i < n; ++i) {
      dq.add_chain(std::span(&buf, 1));
      DescriptorChain c = pop(q);
      EXPECT_TRUE(q.add_used(*mem, c.head(), 0).has_value());
      dq.next_used();
    }
  };
  // used_event = 0: the driver wants an interrupt when entry 0 is used.
  dq.set_used_event(0);
  complete(1);
  EXPECT_TRUE(*q.needs_notification(*mem));
  // used_event = 3: no interrupt for entries 1 and 2, one when entry 3 is used.
  dq.set_used_event(3);
  complete(2);
  EXPECT_FALSE(*q.needs_notification(*mem));
  complete(1);
  EXPECT_TRUE(*q.needs_notification(*mem));
  // A batch that jumps over used_event still interrupts once.
  dq.set_used_event(5);
  complete(3);  // used idx 4 -> 7 covers entry 5
  EXPECT_TRUE(*q.needs_notification(*mem));
  EXPECT_FALSE(*q.needs_notification(*mem));
  // used_event behind: the driver is not interested.
  dq.set_used_event(2);
  complete(2);
  EXPECT_FALSE(*q.needs_notification(*mem));
}

TEST_F(QueueTest, EventIdxPublishesAvailEventWhenGoingIdle) {
  Queue q = make(kEventIdx);
  GuestAddress b = alloc.alloc(8);
  DriverBuffer buf{b, 8, true};
  dq.add_chain(std::span(&buf, 1));
  dq.add_chain(std::span(&buf, 1));
  pop(q);
  pop(q);
  auto none = q.pop(*mem);
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->has_value());
  // The driver must kick when it makes entry 2 available.
  EXPECT_EQ(dq.avail_event(), 2);
}

TEST_F(QueueTest, WithoutEventIdxTheAvailEventSlotIsNotWritten) {
  Queue q = make(0);
  GuestAddress slot = dq.used_addr() + 4 + 8 * kSize;
  ASSERT_TRUE(mem->write_obj(slot, uint16_t{0x1234}).has_value());
  ASSERT_TRUE(q.pop(*mem).has_value());
  EXPECT_EQ(dq.avail_event(), 0x1234);
}

}  // namespace
}  // namespace microvm
