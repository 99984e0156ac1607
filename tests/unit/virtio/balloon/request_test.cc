#include "virtio/balloon/request.h"

#include <gtest/gtest.h>

#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_memory.h"
#include "virtio/queue.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;

class BalloonRequestTest : public ::testing::Test {
 protected:
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(1 << 20);
  DriverQueue dq{*mem, 16, GuestAddress(0x1000)};
  Queue q = *Queue::create(dq.config(), 0);
  GuestAddress data{0x10000};

  DescriptorChain pop(std::vector<DriverBuffer> bufs) {
    dq.add_chain(bufs);
    auto c = q.pop(*mem);
    EXPECT_TRUE(c.has_value() && c->has_value());
    return std::move(**c);
  }
  template <class T>
  DescriptorChain pop_bytes(const std::vector<T>& v, bool writable = false) {
    EXPECT_TRUE(mem->write(data, std::as_bytes(std::span(v))).has_value());
    return pop({{data, static_cast<uint32_t>(v.size() * sizeof(T)), writable}});
  }
};

TEST_F(BalloonRequestTest, MergesNeighbouringPfnsInDriverOrder) {
  auto chain = pop_bytes(std::vector<uint32_t>{10, 11, 12, 20, 13, 0xffffffff});
  auto r = parse_pfn_chain(chain, 256);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[0].gpa, 10u << 12);
  EXPECT_EQ((*r)[0].len, 3u << 12);
  EXPECT_EQ((*r)[1].gpa, 20u << 12);
  EXPECT_EQ((*r)[2].gpa, 13u << 12);
  EXPECT_EQ((*r)[3].gpa, uint64_t{0xffffffff} << 12);  // representable; the device checks RAM
  EXPECT_EQ((*r)[3].len, 4096u);
}

TEST_F(BalloonRequestTest, PfnsMaySpanSeveralBuffers) {
  std::vector<uint32_t> pfns{1, 2, 3};
  ASSERT_TRUE(mem->write(data, std::as_bytes(std::span(pfns))).has_value());
  // 12 bytes split 5 + 7: a PFN straddles the two descriptors.
  auto chain = pop({{data, 5, false}, {data + 5, 7, false}});
  auto r = parse_pfn_chain(chain, 256);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].gpa, 1u << 12);
  EXPECT_EQ((*r)[0].len, 3u << 12);
}

TEST_F(BalloonRequestTest, RefusesBadPfnBuffers) {
  {
    auto chain = pop_bytes(std::vector<uint8_t>{1, 2, 3, 4, 5});
    EXPECT_EQ(parse_pfn_chain(chain, 256).error(), BalloonReject::kUnaligned);
  }
  {
    auto chain = pop({{data, 0, false}});
    EXPECT_EQ(parse_pfn_chain(chain, 256).error(), BalloonReject::kNoData);
  }
  {
    auto chain = pop_bytes(std::vector<uint32_t>{1, 2, 3});
    EXPECT_EQ(parse_pfn_chain(chain, 2).error(), BalloonReject::kTooLarge);
  }
  {
    auto chain = pop({{data, 4, false}, {data + 4, 4, true}});
    EXPECT_EQ(parse_pfn_chain(chain, 256).error(), BalloonReject::kWritable);
  }
}

TEST_F(BalloonRequestTest, ParsesStatsWithLaterDuplicatesWinning) {
  std::vector<VirtioBalloonStat> stats{{VIRTIO_BALLOON_S_MEMTOT, 100},
                                       {VIRTIO_BALLOON_S_MEMFREE, 50},
                                       {VIRTIO_BALLOON_S_MEMTOT, 200},
                                       {VIRTIO_BALLOON_S_NR, 7},
                                       {0xffff, 8}};
  auto chain = pop_bytes(stats);
  auto s = parse_stats_chain(chain, 64);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->values[VIRTIO_BALLOON_S_MEMTOT], 200u);
  EXPECT_EQ(s->values[VIRTIO_BALLOON_S_MEMFREE], 50u);
  EXPECT_FALSE(s->values[VIRTIO_BALLOON_S_CACHES].has_value());
  EXPECT_EQ(s->unknown_tags, 2u);
}

TEST_F(BalloonRequestTest, RefusesBadStatsBuffers) {
  {
    auto chain = pop_bytes(std::vector<uint8_t>(11, 0));
    EXPECT_EQ(parse_stats_chain(chain, 64).error(), BalloonReject::kUnaligned);
  }
  {
    auto chain = pop_bytes(std::vector<uint8_t>(30, 0));
    EXPECT_EQ(parse_stats_chain(chain, 2).error(), BalloonReject::kTooLarge);
  }
  {
    auto chain = pop({{data, 10, true}});
    EXPECT_EQ(parse_stats_chain(chain, 64).error(), BalloonReject::kWritable);
  }
}

}  // namespace
}  // namespace microvm
