#include "virtio/blk/request.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_memory.h"
#include "virtio/blk/blk_spec.h"
#include "virtio/queue.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;

class BlkRequestTest : public ::testing::Test {
 protected:
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(1 << 20);
  testing::DriverQueue dq{*mem, 64, GuestAddress(0x1000)};
  testing::GuestAllocator alloc{GuestAddress(0x10000), GuestAddress(1 << 20)};
  Queue queue = *Queue::create(dq.config(), feature_bit(VIRTIO_F_INDIRECT_DESC));
  BlkLimits limits;
  BlkRequest req;

  void SetUp() override {
    limits.capacity_sectors = 2048;  // 1 MiB disk
    limits.discard = limits.write_zeroes = true;
    limits.max_discard_sectors = limits.max_write_zeroes_sectors = 1024;
    limits.max_discard_seg = limits.max_write_zeroes_seg = 4;
  }

  GuestAddress header(uint32_t type, uint64_t sector) {
    GuestAddress a = alloc.alloc(16);
    EXPECT_TRUE(mem->write_obj(a, VirtioBlkOuthdr{type, 0, sector}).has_value());
    return a;
  }
  std::byte* host(GuestAddress a) { return mem->translate(a, 1)->data(); }

  // Pops `bufs` as a chain and parses it.
  std::expected<void, BlkParseError> parse(std::initializer_list<DriverBuffer> bufs) {
    dq.add_chain(std::vector<DriverBuffer>(bufs));
    auto c = queue.pop(*mem);
    EXPECT_TRUE(c.has_value() && c->has_value());
    EXPECT_TRUE((*c)->valid()) << (*c)->error();
    auto r = parse_request(**c, limits, req);
    EXPECT_TRUE(queue.add_used(*mem, (*c)->head(), 0).has_value());
    dq.next_used();
    return r;
  }
  void expect_reject(const std::expected<void, BlkParseError>& r, BlkReject reason, uint8_t status) {
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().reason, reason) << blk_reject_name(r.error().reason) << ": " << r.error().what;
    EXPECT_EQ(r.error().status, status);
  }
};

TEST_F(BlkRequestTest, Read) {
  GuestAddress data = alloc.alloc(1024), status = alloc.alloc(1);
  auto r = parse({{header(VIRTIO_BLK_T_IN, 3), 16, false}, {data, 1024, true}, {status, 1, true}});
  ASSERT_TRUE(r.has_value()) << r.error().what;
  EXPECT_EQ(req.op, BlkOp::kRead);
  EXPECT_EQ(req.offset, 3u * 512);
  EXPECT_EQ(req.data_len, 1024u);
  ASSERT_EQ(req.data.size(), 1u);
  EXPECT_EQ(req.data[0].iov_base, host(data));
  EXPECT_EQ(req.status, host(status));
}

TEST_F(BlkRequestTest, ReadWithStatusInTheDataDescriptor) {
  GuestAddress data = alloc.alloc(513);
  auto r = parse({{header(VIRTIO_BLK_T_IN, 0), 16, false}, {data, 513, true}});
  ASSERT_TRUE(r.has_value()) << r.error().what;
  EXPECT_EQ(req.data_len, 512u);
  EXPECT_EQ(req.status, host(data) + 512);
}

TEST_F(BlkRequestTest, WriteWithHeaderAndDataInOneDescriptor) {
  GuestAddress hdr = alloc.alloc(16 + 512);
  ASSERT_TRUE(mem->write_obj(hdr, VirtioBlkOuthdr{VIRTIO_BLK_T_OUT, 0, 10}).has_value());
  GuestAddress status = alloc.alloc(1);
  auto r = parse({{hdr, 16 + 512, false}, {status, 1, true}});
  ASSERT_TRUE(r.has_value()) << r.error().what;
  EXPECT_EQ(req.op, BlkOp::kWrite);
  EXPECT_EQ(req.offset, 5120u);
  ASSERT_EQ(req.data.size(), 1u);
  EXPECT_EQ(req.data[0].iov_base, host(hdr) + 16);
  EXPECT_EQ(req.data[0].iov_len, 512u);
}

TEST_F(BlkRequestTest, HeaderSplitAcrossDescriptors) {
  GuestAddress hdr = header(VIRTIO_BLK_T_IN, 1);
  GuestAddress data = alloc.alloc(512), status = alloc.alloc(1);
  auto r = parse({{hdr, 8, false}, {hdr + 8, 8, false}, {data, 512, true}, {status, 1, true}});
  ASSERT_TRUE(r.has_value()) << r.error().what;
  EXPECT_EQ(req.offset, 512u);
}

TEST_F(BlkRequestTest, WriteToReadOnlyDisk) {
  limits.read_only = true;
  GuestAddress status = alloc.alloc(1);
  auto r = parse({{header(VIRTIO_BLK_T_OUT, 0), 16, false}, {alloc.alloc(512), 512, false}, {status, 1, true}});
  expect_reject(r, BlkReject::kReadOnly, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(r.error().status_ptr, host(status));
}

TEST_F(BlkRequestTest, ReadsAreFineOnReadOnlyDisk) {
  limits.read_only = true;
  auto r = parse({{header(VIRTIO_BLK_T_IN, 0), 16, false}, {alloc.alloc(512), 512, true}, {alloc.alloc(1), 1, true}});
  EXPECT_TRUE(r.has_value());
}

TEST_F(BlkRequestTest, Flush) {
  GuestAddress status = alloc.alloc(1);
  auto r = parse({{header(VIRTIO_BLK_T_FLUSH, 12345), 16, false}, {status, 1, true}});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(req.op, BlkOp::kFlush);
  EXPECT_TRUE(req.data.empty());
  EXPECT_EQ(req.status, host(status));
}

TEST_F(BlkRequestTest, GetId) {
  GuestAddress id = alloc.alloc(20);
  auto r = parse({{header(VIRTIO_BLK_T_GET_ID, 0), 16, false}, {id, 20, true}, {alloc.alloc(1), 1, true}});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(req.op, BlkOp::kGetId);
  EXPECT_EQ(req.data_len, 20u);
  // A larger buffer still gets 20 bytes; a smaller one a truncated id.
  r = parse({{header(VIRTIO_BLK_T_GET_ID, 0), 16, false}, {alloc.alloc(64), 64, true}, {alloc.alloc(1), 1, true}});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(req.data_len, 20u);
  r = parse({{header(VIRTIO_BLK_T_GET_ID, 0), 16, false}, {alloc.alloc(9), 9, true}});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(req.data_len, 8u);
  r = parse({{header(VIRTIO_BLK_T_GET_ID, 0), 16, false}, {alloc.alloc(1), 1, true}});
  expect_reject(r, BlkReject::kBadLength, VIRTIO_BLK_S_IOERR);
}

TEST_F(BlkRequestTest, UnknownAndUnimplementedTypesAreUnsupp) {
  for (uint32_t type : {2u, 3u, VIRTIO_BLK_T_GET_LIFETIME, VIRTIO_BLK_T_SECURE_ERASE, 0xffffffffu}) {
    GuestAddress status = alloc.alloc(1);
    auto r = parse({{header(type, 0), 16, false}, {status, 1, true}});
    expect_reject(r, BlkReject::kUnsupported, VIRTIO_BLK_S_UNSUPP);
    EXPECT_EQ(r.error().status_ptr, host(status));
  }
}

TEST_F(BlkRequestTest, NoWritableByteMeansNoStatus) {
  auto r = parse({{header(VIRTIO_BLK_T_IN, 0), 16, false}, {alloc.alloc(512), 512, false}});
  expect_reject(r, BlkReject::kNoStatus, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(r.error().status_ptr, nullptr);
}

TEST_F(BlkRequestTest, ShortHeader) {
  GuestAddress status = alloc.alloc(1);
  auto r = parse({{header(VIRTIO_BLK_T_IN, 0), 15, false}, {status, 1, true}});
  expect_reject(r, BlkReject::kBadHeader, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(r.error().status_ptr, host(status));
  r = parse({{alloc.alloc(1), 1, true}});  // status only
  expect_reject(r, BlkReject::kBadHeader, VIRTIO_BLK_S_IOERR);
}

TEST_F(BlkRequestTest, DataLengthMustBeANonZeroMultipleOf512) {
  auto r = parse({{header(VIRTIO_BLK_T_IN, 0), 16, false}, {alloc.alloc(100), 100, true}, {alloc.alloc(1), 1, true}});
  expect_reject(r, BlkReject::kBadLength, VIRTIO_BLK_S_IOERR);
  r = parse({{header(VIRTIO_BLK_T_IN, 0), 16, false}, {alloc.alloc(1), 1, true}});
  expect_reject(r, BlkReject::kBadLength, VIRTIO_BLK_S_IOERR);
  r = parse({{header(VIRTIO_BLK_T_OUT, 0), 16 + 0, false}, {alloc.alloc(1), 1, true}});
  expect_reject(r, BlkReject::kBadLength, VIRTIO_BLK_S_IOERR);
  GuestAddress odd = header(VIRTIO_BLK_T_OUT, 0);
  alloc.alloc(600);
  r = parse({{odd, 16 + 511, false}, {alloc.alloc(1), 1, true}});
  expect_reject(r, BlkReject::kBadLength, VIRTIO_BLK_S_IOERR);
}

TEST_F(BlkRequestTest, PastTheEndOfTheDisk) {
  auto data = alloc.alloc(1024);
  auto r = parse({{header(VIRTIO_BLK_T_IN, 2047), 16, false}, {data, 512, true}, {alloc.alloc(1), 1, true}});
  EXPECT_TRUE(r.has_value());  // the last sector
  r = parse({{header(VIRTIO_BLK_T_IN, 2047), 16, false}, {data, 1024, true}, {alloc.alloc(1), 1, true}});
  expect_reject(r, BlkReject::kOutOfRange, VIRTIO_BLK_S_IOERR);
  r = parse({{header(VIRTIO_BLK_T_OUT, 2048), 16, false}, {data, 512, false}, {alloc.alloc(1), 1, true}});
  expect_reject(r, BlkReject::kOutOfRange, VIRTIO_BLK_S_IOERR);
}

TEST_F(BlkRequestTest, SectorArithmeticOverflow) {
  auto data = alloc.alloc(512);
  // sector * 512 overflows.
  auto r = parse(
      {{header(VIRTIO_BLK_T_IN, (UINT64_MAX / 512) + 1), 16, false}, {data, 512, true}, {alloc.alloc(1), 1, true}});
  expect_reject(r, BlkReject::kOutOfRange, VIRTIO_BLK_S_IOERR);
  // sector * 512 fits, + len wraps.
  r = parse({{header(VIRTIO_BLK_T_IN, UINT64_MAX / 512), 16, false}, {data, 512, true}, {alloc.alloc(1), 1, true}});
  expect_reject(r, BlkReject::kOutOfRange, VIRTIO_BLK_S_IOERR);
  // Huge disk (capacity near 2^55 sectors) still refuses the wrap.
  limits.capacity_sectors = UINT64_MAX / 512;
  r = parse({{header(VIRTIO_BLK_T_IN, UINT64_MAX / 512), 16, false}, {data, 512, true}, {alloc.alloc(1), 1, true}});
  expect_reject(r, BlkReject::kOutOfRange, VIRTIO_BLK_S_IOERR);
}

TEST_F(BlkRequestTest, SegmentAndSizeLimits) {
  limits.max_data_segments = 2;
  auto d = alloc.alloc(1536);
  auto r = parse({{header(VIRTIO_BLK_T_IN, 0), 16, false},
                  {d, 512, true},
                  {d + 512, 512, true},
                  {d + 1024, 512, true},
                  {alloc.alloc(1), 1, true}});
  expect_reject(r, BlkReject::kBadLength, VIRTIO_BLK_S_IOERR);
  limits.max_data_segments = 1024;
  limits.max_data_bytes = 1024;
  r = parse({{header(VIRTIO_BLK_T_IN, 0), 16, false}, {d, 1536, true}, {alloc.alloc(1), 1, true}});
  expect_reject(r, BlkReject::kBadLength, VIRTIO_BLK_S_IOERR);
}

// --- discard / write zeroes ---

class BlkSegmentTest : public BlkRequestTest {
 protected:
  GuestAddress segments(std::initializer_list<VirtioBlkDiscardWriteZeroes> segs) {
    GuestAddress a = alloc.alloc(16 * segs.size() + 16);
    GuestAddress p = a;
    for (const auto& s : segs) {
      EXPECT_TRUE(mem->write_obj(p, s).has_value());
      p = p + 16;
    }
    return a;
  }
  std::expected<void, BlkParseError> parse_segs(uint32_t type, std::initializer_list<VirtioBlkDiscardWriteZeroes> segs,
                                                uint32_t len_override = 0) {
    GuestAddress s = segments(segs);
    uint32_t len = len_override ? len_override : static_cast<uint32_t>(16 * segs.size());
    return parse({{header(type, 0), 16, false}, {s, len, false}, {alloc.alloc(1), 1, true}});
  }
};

TEST_F(BlkSegmentTest, Discard) {
  auto r = parse_segs(VIRTIO_BLK_T_DISCARD, {{8, 16, 0}, {100, 1, 0}});
  ASSERT_TRUE(r.has_value()) << r.error().what;
  EXPECT_EQ(req.op, BlkOp::kDiscard);
  ASSERT_EQ(req.segments.size(), 2u);
  EXPECT_EQ(req.segments[0].offset, 8u * 512);
  EXPECT_EQ(req.segments[0].len, 16u * 512);
  EXPECT_EQ(req.segments[1].offset, 100u * 512);
}

TEST_F(BlkSegmentTest, WriteZeroesCarriesUnmap) {
  auto r = parse_segs(VIRTIO_BLK_T_WRITE_ZEROES, {{0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}, {8, 8, 0}});
  ASSERT_TRUE(r.has_value()) << r.error().what;
  EXPECT_EQ(req.op, BlkOp::kWriteZeroes);
  EXPECT_TRUE(req.segments[0].unmap);
  EXPECT_FALSE(req.segments[1].unmap);
}

TEST_F(BlkSegmentTest, NotNegotiatedIsUnsupp) {
  limits.discard = false;
  expect_reject(parse_segs(VIRTIO_BLK_T_DISCARD, {{0, 8, 0}}), BlkReject::kUnsupported, VIRTIO_BLK_S_UNSUPP);
  limits.write_zeroes = false;
  expect_reject(parse_segs(VIRTIO_BLK_T_WRITE_ZEROES, {{0, 8, 0}}), BlkReject::kUnsupported, VIRTIO_BLK_S_UNSUPP);
}

TEST_F(BlkSegmentTest, FlagsCheckedPerSpec) {
  // §5.2.6.2: unmap on a discard and unknown flags are UNSUPP.
  expect_reject(parse_segs(VIRTIO_BLK_T_DISCARD, {{0, 8, 1}}), BlkReject::kUnsupported, VIRTIO_BLK_S_UNSUPP);
  expect_reject(parse_segs(VIRTIO_BLK_T_DISCARD, {{0, 8, 2}}), BlkReject::kUnsupported, VIRTIO_BLK_S_UNSUPP);
  expect_reject(parse_segs(VIRTIO_BLK_T_WRITE_ZEROES, {{0, 8, 0x80000001u}}), BlkReject::kUnsupported,
                VIRTIO_BLK_S_UNSUPP);
}

TEST_F(BlkSegmentTest, Limits) {
  expect_reject(parse_segs(VIRTIO_BLK_T_DISCARD, {{0, 1, 0}, {1, 1, 0}, {2, 1, 0}, {3, 1, 0}, {4, 1, 0}}),
                BlkReject::kBadSegments, VIRTIO_BLK_S_IOERR);
  expect_reject(parse_segs(VIRTIO_BLK_T_DISCARD, {{0, 1025, 0}}), BlkReject::kBadSegments, VIRTIO_BLK_S_IOERR);
  expect_reject(parse_segs(VIRTIO_BLK_T_DISCARD, {{0, 0, 0}}), BlkReject::kBadSegments, VIRTIO_BLK_S_IOERR);
  expect_reject(parse_segs(VIRTIO_BLK_T_DISCARD, {{0, 8, 0}}, 24), BlkReject::kBadSegments, VIRTIO_BLK_S_IOERR);
  GuestAddress status = alloc.alloc(1);
  expect_reject(parse({{header(VIRTIO_BLK_T_DISCARD, 0), 16, false}, {status, 1, true}}), BlkReject::kBadSegments,
                VIRTIO_BLK_S_IOERR);
}

TEST_F(BlkSegmentTest, RangeAndOverflow) {
  expect_reject(parse_segs(VIRTIO_BLK_T_DISCARD, {{2047, 2, 0}}), BlkReject::kOutOfRange, VIRTIO_BLK_S_IOERR);
  expect_reject(parse_segs(VIRTIO_BLK_T_WRITE_ZEROES, {{UINT64_MAX / 512, 1, 0}}), BlkReject::kOutOfRange,
                VIRTIO_BLK_S_IOERR);
  expect_reject(parse_segs(VIRTIO_BLK_T_WRITE_ZEROES, {{UINT64_MAX, 1, 0}}), BlkReject::kOutOfRange,
                VIRTIO_BLK_S_IOERR);
  EXPECT_TRUE(parse_segs(VIRTIO_BLK_T_WRITE_ZEROES, {{2040, 8, 0}}).has_value());
}

TEST_F(BlkSegmentTest, ReadOnlyRefusesDiscardAndWriteZeroes) {
  limits.read_only = true;
  expect_reject(parse_segs(VIRTIO_BLK_T_DISCARD, {{0, 8, 0}}), BlkReject::kReadOnly, VIRTIO_BLK_S_IOERR);
  expect_reject(parse_segs(VIRTIO_BLK_T_WRITE_ZEROES, {{0, 8, 0}}), BlkReject::kReadOnly, VIRTIO_BLK_S_IOERR);
}

TEST_F(BlkRequestTest, ReusesTheOutputVectors) {
  auto d = alloc.alloc(512);
  ASSERT_TRUE(parse({{header(VIRTIO_BLK_T_IN, 0), 16, false}, {d, 512, true}, {alloc.alloc(1), 1, true}}).has_value());
  ASSERT_TRUE(parse({{header(VIRTIO_BLK_T_FLUSH, 0), 16, false}, {alloc.alloc(1), 1, true}}).has_value());
  EXPECT_TRUE(req.data.empty());
  EXPECT_EQ(req.data_len, 0u);
}

}  // namespace
}  // namespace microvm
