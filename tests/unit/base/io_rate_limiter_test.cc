#include "base/io_rate_limiter.h"

#include <gtest/gtest.h>

#include "base/rate_limit_spec.h"

namespace microvm {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

TEST(RefillBucket, StartsFullThenRefillsAtTheRate) {
  RefillBucket b(BucketLimit{.per_second = 1000, .burst = 100}, 0);
  EXPECT_EQ(b.tokens(0), 100);
  EXPECT_EQ(b.wait_ns(100, 0), 0);
  b.take(100);
  EXPECT_EQ(b.tokens(0), 0);
  // 1000 tokens/s: one token per millisecond.
  EXPECT_EQ(b.wait_ns(1, 0), 1'000'000);
  EXPECT_EQ(b.wait_ns(10, 0), 10'000'000);
  EXPECT_EQ(b.tokens(5'000'000), 5);
  EXPECT_EQ(b.wait_ns(10, 5'000'000), 5'000'000);
  // Never more than the burst, however long it waits.
  EXPECT_EQ(b.tokens(100 * kSecond), 100);
}

TEST(RefillBucket, BurstDefaultsToOneSecondsWorth) {
  RefillBucket b(BucketLimit{.per_second = 4096}, 0);
  EXPECT_EQ(b.tokens(0), 4096);
  EXPECT_EQ(b.tokens(10 * kSecond), 4096);
}

TEST(RefillBucket, ACostLargerThanTheBucketWaitsForAFullBucketThenLeavesDebt) {
  RefillBucket b(BucketLimit{.per_second = 1000, .burst = 100}, 0);
  b.take(50);
  // 300 > 100: admitted once the bucket is full (50 ms from now), never refused for good.
  EXPECT_EQ(b.wait_ns(300, 0), 50'000'000);
  EXPECT_EQ(b.wait_ns(300, 50'000'000), 0);
  b.take(300);
  EXPECT_EQ(b.tokens(50'000'000), -200);
  // The debt is paid at the rate: the long-run rate holds.
  EXPECT_EQ(b.wait_ns(1, 50'000'000), 201'000'000);
}

TEST(RefillBucket, UnlimitedNeverWaitsAndABackwardClockAddsNothing) {
  RefillBucket none;
  EXPECT_EQ(none.wait_ns(1ull << 40, 0), 0);
  RefillBucket b(BucketLimit{.per_second = 1000, .burst = 10}, 5 * kSecond);
  b.take(10);
  EXPECT_EQ(b.tokens(4 * kSecond), 0);
  EXPECT_EQ(b.tokens(5 * kSecond + 3'000'000), 3);
}

TEST(RefillBucket, NoTokenIsLostOrInventedByRounding) {
  // 3 tokens a second: refilling in 1 ns steps must add up exactly.
  RefillBucket b(BucketLimit{.per_second = 3, .burst = 3}, 0);
  b.take(3);
  int64_t t = 0;
  for (int i = 0; i < 1000; ++i) t += 333'333, b.tokens(t);
  EXPECT_EQ(b.tokens(kSecond), 3);
  b.take(3);
  EXPECT_EQ(b.tokens(kSecond + 333'333'333), 0);
  EXPECT_EQ(b.tokens(kSecond + 333'333'334), 1);
}

TEST(RefillBucket, OneTimeBurstIsSpentFirstAndNeverRefilled) {
  RefillBucket b(BucketLimit{.per_second = 1000, .burst = 100, .one_time_burst = 500}, 0);
  EXPECT_EQ(b.one_time_left(), 500u);
  EXPECT_EQ(b.tokens(0), 100);
  // 550 at once: the 500 of the burst, then 50 of the bucket's 100.
  EXPECT_EQ(b.wait_ns(550, 0), 0);
  b.take(550);
  EXPECT_EQ(b.one_time_left(), 0u);
  EXPECT_EQ(b.tokens(0), 50);
  // From now on the plain bucket: it refills to 100, never to the burst again.
  EXPECT_EQ(b.wait_ns(100, 0), 50'000'000);
  EXPECT_EQ(b.tokens(3600 * kSecond), 100);
  EXPECT_EQ(b.one_time_left(), 0u);
  EXPECT_EQ(b.wait_ns(101, 3600 * kSecond), 0) << "a cost over the size waits only for a full bucket";
  b.take(101);
  EXPECT_GT(b.wait_ns(1, 3600 * kSecond), 0) << "the burst was not handed out again";
}

TEST(RefillBucket, RequestsWithinTheOneTimeBurstLeaveTheBucketFull) {
  RefillBucket b(BucketLimit{.per_second = 10, .burst = 10, .one_time_burst = 25}, 0);
  for (int i = 0; i < 25; ++i) {
    ASSERT_EQ(b.wait_ns(1, 0), 0) << i;
    b.take(1);
  }
  EXPECT_EQ(b.one_time_left(), 0u);
  EXPECT_EQ(b.tokens(0), 10) << "the burst paid for all 25";
  b.take(10);
  EXPECT_EQ(b.wait_ns(1, 0), 100'000'000) << "then 10 per second";
}

TEST(RefillBucket, AnUnlimitedBucketHasNoOneTimeBurst) {
  RefillBucket b(BucketLimit{.per_second = 0, .one_time_burst = 1000}, 0);
  EXPECT_FALSE(b.limited());
  EXPECT_EQ(b.one_time_left(), 0u);
  EXPECT_EQ(b.wait_ns(1ull << 40, 0), 0);
}

TEST(IoRateLimiter, ThroughputOverASimulatedMinuteIsTheRatePlusBurstPlusOneTimeBurst) {
  IoRateLimiter l(IoLimit{.bytes = {.per_second = 1 << 20, .burst = 256 << 10, .one_time_burst = 4 << 20}}, 0);
  int64_t now = 0;
  uint64_t bytes = 0;
  while (now <= 60 * kSecond) {
    int64_t wait = l.admit(64 << 10, 1, now);
    if (wait) {
      now += wait;
      continue;
    }
    bytes += 64 << 10;
  }
  uint64_t expected = 60ull * (1 << 20) + (256 << 10) + (4 << 20);
  EXPECT_LE(bytes, expected + (64 << 10));
  EXPECT_GE(bytes, expected - (64 << 10));
}

TEST(IoRateLimiter, ReplacingOneBucketKeepsTheOthersStateAndBurst) {
  IoRateLimiter l(IoLimit{.bytes = {.per_second = 1000, .burst = 1000, .one_time_burst = 5000},
                          .ops = {.per_second = 10, .burst = 2}},
                  0);
  EXPECT_EQ(l.admit(3000, 1, 0), 0);
  EXPECT_EQ(l.admit(0, 1, 0), 0);
  EXPECT_GT(l.admit(0, 1, 0), 0) << "ops bucket empty";
  EXPECT_EQ(l.bytes().one_time_left(), 2000u);
  // A new ops limit: the bytes bucket's one-time burst is not handed out again.
  l.set_ops(BucketLimit{.per_second = 1000, .burst = 1000}, 0);
  EXPECT_EQ(l.bytes().one_time_left(), 2000u);
  EXPECT_EQ(l.admit(0, 1, 0), 0);
  // A new bytes limit starts afresh, with its own burst.
  l.set_bytes(BucketLimit{.per_second = 1000, .burst = 1000, .one_time_burst = 7}, 0);
  EXPECT_EQ(l.bytes().one_time_left(), 7u);
}

TEST(IoRateLimiter, BothBucketsMustAllowAndARefusalTakesNothing) {
  IoRateLimiter l(IoLimit{.bytes = {.per_second = 1 << 20, .burst = 1 << 20}, .ops = {.per_second = 10, .burst = 2}},
                  0);
  EXPECT_EQ(l.admit(4096, 1, 0), 0);
  EXPECT_EQ(l.admit(4096, 1, 0), 0);
  // Ops are out (100 ms per op); bytes are not. Nothing is taken from the bytes bucket.
  EXPECT_EQ(l.admit(4096, 1, 0), 100'000'000);
  EXPECT_EQ(l.admit(4096, 1, 100'000'000), 0);
  // Bytes: 1 MiB - 12 KiB left; a 1 MiB request waits for the refill of 12 KiB.
  int64_t wait = l.admit(1 << 20, 0, 100'000'000);
  EXPECT_GT(wait, 0);
  EXPECT_EQ(l.admit(1 << 20, 0, 100'000'000 + wait), 0);
}

TEST(IoRateLimiter, ThroughputOverASimulatedMinuteIsTheRatePlusTheBurst) {
  // 64 KiB requests against 1 MiB/s with a 256 KiB burst, retried exactly when told.
  IoRateLimiter l(IoLimit{.bytes = {.per_second = 1 << 20, .burst = 256 << 10}}, 0);
  int64_t now = 0;
  uint64_t bytes = 0;
  while (now <= 60 * kSecond) {
    int64_t wait = l.admit(64 << 10, 1, now);
    if (wait) {
      now += wait;
      continue;
    }
    bytes += 64 << 10;
  }
  uint64_t expected = 60ull * (1 << 20) + (256 << 10);
  EXPECT_LE(bytes, expected + (64 << 10));
  EXPECT_GE(bytes, expected - (64 << 10));
}

TEST(RateLimitSpec, ParsesTheFourKeysAndRefusesBadValues) {
  IoLimit l;
  EXPECT_TRUE(*parse_rate_limit_option("bps", "10M", "iops", l));
  EXPECT_TRUE(*parse_rate_limit_option("bps_burst", "64K", "iops", l));
  EXPECT_TRUE(*parse_rate_limit_option("iops", "500", "iops", l));
  EXPECT_TRUE(*parse_rate_limit_option("iops_burst", "50", "iops", l));
  EXPECT_EQ(l.bytes.per_second, 10u << 20);
  EXPECT_EQ(l.bytes.burst, 64u << 10);
  EXPECT_EQ(l.ops.per_second, 500u);
  EXPECT_EQ(l.ops.burst, 50u);
  EXPECT_FALSE(*parse_rate_limit_option("pps", "5", "iops", l));  // not this device's key
  EXPECT_TRUE(*parse_rate_limit_option("pps", "5", "pps", l));
  for (const char* bad : {"", "0", "-1", "1T", "x", "10MB", "99999999999999999999", "2000000000G"})
    EXPECT_FALSE(parse_rate_limit_option("bps", bad, "iops", l).has_value()) << bad;
  IoLimit burst_only;
  burst_only.ops.burst = 5;
  EXPECT_FALSE(check_rate_limit(burst_only, "pps").has_value());
  EXPECT_TRUE(check_rate_limit(l, "pps").has_value());
}

}  // namespace
}  // namespace microvm
