// virtio-blk under a rate limit (--disk ...,bps=,iops=): over the limit requests wait in the
// ring, never fail; what completes follows the fake clock exactly; nothing is lost or
// reordered in its data; a reset while a request waits forgets it cleanly.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "tests/testing/memory_block_backend.h"
#include "tests/unit/virtio/blk/blk_test_driver.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::BlkTestDriver;
using testing::MemoryBlockBackend;

constexpr int64_t kMs = 1'000'000;

class BlkRateLimitTest : public ::testing::Test {
 protected:
  BlkTestDriver drv;
  int64_t now = 0;
  MemoryBlockBackend* backend = nullptr;

  void start(IoLimit limit) {
    auto b = *MemoryBlockBackend::create(1 << 20);
    backend = b.get();
    for (size_t i = 0; i < (1 << 20); ++i) backend->disk()[i] = std::byte(i / 4096 + 1);
    BlkOptions o;
    o.rate_limit = limit;
    o.rate_clock = [this] { return now; };
    drv.start(std::move(b), o);
  }
  // Does what the limiter's timer does when it fires (its real delay follows the fake clock,
  // which the test moves at will), then runs the loop until it is idle.
  void pump() {
    if (drv.dev->rate_limiter()->armed()) drv.dev->rate_limiter()->fire();
    for (int i = 0; i < 50; ++i)
      if (*drv.loop->run_once(0) == 0) break;
  }
  uint16_t completed() { return drv.dq->used_idx(); }
};

TEST_F(BlkRateLimitTest, OpsLimitAdmitsTheBurstThenOnePerRefillAndLosesNothing) {
  // 1000 requests/s (1 per ms), burst 4.
  start(IoLimit{.ops = {.per_second = 1000, .burst = 4}});
  std::vector<GuestAddress> data, status;
  for (int i = 0; i < 12; ++i) {
    data.push_back(drv.buffer(4096, 0));
    status.push_back(drv.post(VIRTIO_BLK_T_IN, static_cast<uint64_t>(i) * 8, data.back(), 4096, true));
  }
  pump();
  EXPECT_EQ(completed(), 4) << "only the burst may pass at once";
  for (int i = 4; i < 12; ++i) EXPECT_EQ(*drv.mem->read_obj<uint8_t>(status[i]), BlkTestDriver::kNoStatus) << i;
  now += 3 * kMs;
  pump();
  EXPECT_EQ(completed(), 7);
  now += 5 * kMs;  // the bucket holds at most 4
  pump();
  EXPECT_EQ(completed(), 11);
  now += 1 * kMs;
  pump();
  EXPECT_EQ(completed(), 12);
  EXPECT_GE(drv.dev->rate_limiter()->throttled(), 3u);
  // Each request got its own sector's bytes, in order, and an OK status: delayed, not failed.
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(*drv.mem->read_obj<uint8_t>(status[i]), VIRTIO_BLK_S_OK) << i;
    EXPECT_EQ(drv.bytes(data[i], 4096)[0], std::byte(i + 1)) << i;
  }
}

TEST_F(BlkRateLimitTest, BytesLimitCountsReadAndWriteData) {
  // 128 KiB/s with a 128 KiB burst; 64 KiB writes: two now, then one per half second.
  start(IoLimit{.bytes = {.per_second = 128 << 10, .burst = 128 << 10}});
  std::vector<GuestAddress> status;
  for (int i = 0; i < 5; ++i)
    status.push_back(
        drv.post(VIRTIO_BLK_T_OUT, static_cast<uint64_t>(i) * 128, drv.buffer(64 << 10, 0x40 + i), 64 << 10, false));
  pump();
  EXPECT_EQ(completed(), 2);
  now += 499 * kMs;
  pump();
  EXPECT_EQ(completed(), 2) << "a millisecond early";
  now += 1 * kMs;
  pump();
  EXPECT_EQ(completed(), 3);
  now += 1000 * kMs;
  pump();
  EXPECT_EQ(completed(), 5);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(*drv.mem->read_obj<uint8_t>(status[i]), VIRTIO_BLK_S_OK);
    EXPECT_EQ(backend->disk()[static_cast<size_t>(i) * (64 << 10) + 100], std::byte(0x40 + i)) << i;
  }
}

TEST_F(BlkRateLimitTest, ARequestLargerThanTheBucketIsDelayedNotRefused) {
  start(IoLimit{.bytes = {.per_second = 4096, .burst = 4096}});
  GuestAddress status = drv.post(VIRTIO_BLK_T_IN, 0, drv.buffer(64 << 10), 64 << 10, true);
  pump();
  EXPECT_EQ(completed(), 1) << "a full bucket admits one oversized request";
  GuestAddress next = drv.post(VIRTIO_BLK_T_IN, 0, drv.buffer(4096), 4096, true);
  pump();
  EXPECT_EQ(completed(), 1);
  now += 16'000 * kMs;  // the 60 KiB of debt, plus the 4 KiB it asks for
  pump();
  EXPECT_EQ(completed(), 2);
  EXPECT_EQ(*drv.mem->read_obj<uint8_t>(status), VIRTIO_BLK_S_OK);
  EXPECT_EQ(*drv.mem->read_obj<uint8_t>(next), VIRTIO_BLK_S_OK);
}

TEST_F(BlkRateLimitTest, ResetWhileARequestWaitsForgetsItAndTheDeviceWorksAfter) {
  start(IoLimit{.ops = {.per_second = 1, .burst = 1}});
  drv.post(VIRTIO_BLK_T_IN, 0, drv.buffer(512), 512, true);
  GuestAddress waiting = drv.post(VIRTIO_BLK_T_IN, 0, drv.buffer(512), 512, true);
  pump();
  EXPECT_EQ(completed(), 1);
  drv.reset();
  now += 2000 * kMs;
  pump();  // the timer must not touch the forgotten request
  EXPECT_EQ(*drv.mem->read_obj<uint8_t>(waiting), BlkTestDriver::kNoStatus);
  drv.activate();
  EXPECT_EQ(drv.read(0, drv.buffer(512), 512), VIRTIO_BLK_S_OK);
}

// The real timerfd on the real loop: with a short wait the deferred request completes with
// no help from the test once the (fake) clock has moved.
TEST_F(BlkRateLimitTest, TheTimerfdBringsTheDeferredRequestBack) {
  start(IoLimit{.ops = {.per_second = 1000, .burst = 1}});
  drv.post(VIRTIO_BLK_T_IN, 0, drv.buffer(512), 512, true);
  GuestAddress second = drv.post(VIRTIO_BLK_T_IN, 8, drv.buffer(512), 512, true);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(drv.loop->run_once(0).has_value());
  EXPECT_EQ(completed(), 1);
  EXPECT_TRUE(drv.dev->rate_limiter()->armed());
  now += 1 * kMs;
  EXPECT_EQ(drv.wait(second), VIRTIO_BLK_S_OK);  // runs the loop, the timer fires within ~1 ms
}

}  // namespace
}  // namespace microvm

namespace microvm {
namespace {

// PATCH /drives rate_limiter: a drive started without a limit gets one at run time, and
// lifting it lets the request it held back go at once, with no clock movement and no timer.
TEST_F(BlkRateLimitTest, LimitChangesAtRunTimeAndLiftingItReleasesTheWaitingRequest) {
  start(IoLimit{});
  ASSERT_NE(drv.dev->rate_limiter(), nullptr) << "every drive has a throttle, so a limit can come later";
  auto post_reads = [&](int n) {
    std::vector<GuestAddress> status;
    for (int i = 0; i < n; ++i) status.push_back(drv.post(VIRTIO_BLK_T_IN, 0, drv.buffer(512, 0), 512, true));
    return status;
  };
  post_reads(6);
  pump();
  EXPECT_EQ(completed(), 6) << "unlimited: everything passes";

  drv.dev->set_rate_limit(RateLimitUpdate{.ops = BucketLimit{.per_second = 1000, .burst = 2}});
  EXPECT_EQ(drv.dev->rate_limiter()->limit().ops.per_second, 1000u);
  post_reads(6);
  pump();
  EXPECT_EQ(completed(), 8) << "the new bucket starts full (2), then the limit holds";
  EXPECT_TRUE(drv.dev->rate_limiter()->armed());

  // Changing only the bytes bucket keeps the ops bucket as it is: its limit and its (empty)
  // state, so a change of one bucket never hands the guest a fresh burst of the other.
  drv.dev->set_rate_limit(RateLimitUpdate{.bytes = BucketLimit{.per_second = 1 << 30, .burst = 1 << 30}});
  EXPECT_EQ(drv.dev->rate_limiter()->limit().ops.per_second, 1000u);
  for (int i = 0; i < 50; ++i)
    if (*drv.loop->run_once(0) == 0) break;
  EXPECT_EQ(completed(), 8) << "the ops bucket was refilled by a change of the bytes bucket";

  // Lifting the ops limit: the held request goes now, without waiting for the old timer.
  drv.dev->set_rate_limit(RateLimitUpdate{.ops = BucketLimit{}});
  for (int i = 0; i < 50; ++i)
    if (*drv.loop->run_once(0) == 0) break;
  EXPECT_EQ(completed(), 12) << "the four held requests went at once";
  EXPECT_FALSE(drv.dev->needs_reset());
}

}  // namespace
}  // namespace microvm
