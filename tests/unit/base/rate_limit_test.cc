#include "base/rate_limit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "base/throttled_log.h"

namespace microvm {
namespace {

constexpr int64_t kSec = 1'000'000'000;

TEST(TokenBucket, BurstThenOnePerPeriod) {
  TokenBucket b({.burst = 10, .period = std::chrono::seconds(1)});
  int64_t t = 5 * kSec;
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(b.take(t)) << i;
  EXPECT_FALSE(b.take(t));
  EXPECT_FALSE(b.take(t + kSec / 2));
  EXPECT_TRUE(b.take(t + kSec));  // one token back after one period
  EXPECT_FALSE(b.take(t + kSec));
  EXPECT_TRUE(b.take(t + 2 * kSec));
}

TEST(TokenBucket, IdleBucketRefillsToBurstOnly) {
  TokenBucket b({.burst = 3, .period = std::chrono::seconds(1)});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(b.take(0));
  ASSERT_FALSE(b.take(0));
  // An hour of quiet buys a full bucket, never more than the burst.
  int64_t later = 3600 * kSec;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(b.take(later)) << i;
  EXPECT_FALSE(b.take(later));
}

TEST(TokenBucket, ConcurrentCallersShareTheBurst) {
  TokenBucket b({.burst = 10, .period = std::chrono::hours(1)});
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      for (int j = 0; j < 1000; ++j) allowed += b.take(kSec) ? 1 : 0;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), 10);
}

struct FakeClock {
  int64_t now = 1000 * kSec;
  MonotonicClock fn() {
    return [this] { return now; };
  }
};

TEST(LogThrottle, EachKeyHasItsOwnBudgetAndCountsDrops) {
  FakeClock clock;
  LogThrottle t({.burst = 2, .period = std::chrono::seconds(1)}, clock.fn());
  int a, b;
  uint64_t suppressed = 99;
  EXPECT_TRUE(t.allow(&a, &suppressed));
  EXPECT_EQ(suppressed, 0u);
  EXPECT_TRUE(t.allow(&a));
  EXPECT_FALSE(t.allow(&a));
  EXPECT_FALSE(t.allow(&a));
  EXPECT_FALSE(t.allow(&a));
  EXPECT_TRUE(t.allow(&b));  // another call site is not starved by the first
  clock.now += kSec;
  EXPECT_TRUE(t.allow(&a, &suppressed));
  EXPECT_EQ(suppressed, 3u);
  EXPECT_FALSE(t.allow(&a));
}

TEST(LogThrottle, KeysBeyondTheTableShareOneLimitedBucket) {
  FakeClock clock;
  LogThrottle t({.burst = 1, .period = std::chrono::seconds(1)}, clock.fn());
  std::vector<int> keys(LogThrottle::kSlots + 50);
  size_t allowed = 0;
  for (auto& k : keys) allowed += t.allow(&k) ? 1 : 0;
  // Every tabled key once, and the overflow bucket once for all the rest.
  EXPECT_EQ(allowed, LogThrottle::kSlots + 1);
  EXPECT_FALSE(t.allow(&keys.back()));
  EXPECT_FALSE(t.allow(nullptr));
}

TEST(ThrottledLog, BurstThenOneLinePerSecondWithSuppressedCount) {
  FakeClock clock;
  std::vector<std::string> lines;
  Logger logger([&](LogLevel, std::string_view m) { lines.emplace_back(m); }, LogLevel::kWarn);
  ThrottledLog log(&logger, "virtio-test", {}, clock.fn());
  for (int i = 0; i < 1000; ++i) log.warn("bad chain %d", i);
  ASSERT_EQ(lines.size(), 10u);
  EXPECT_EQ(lines[0], "virtio-test: bad chain 0");
  EXPECT_EQ(lines[9], "virtio-test: bad chain 9");
  clock.now += kSec;
  log.warn("bad chain %d", 1000);
  ASSERT_EQ(lines.size(), 11u);
  EXPECT_EQ(lines[10], "virtio-test: bad chain 1000 (990 similar messages suppressed)");
  // A different call site has its own budget.
  log.warn("other %s", "thing");
  ASSERT_EQ(lines.size(), 12u);
  EXPECT_EQ(lines[11], "virtio-test: other thing");
}

TEST(ThrottledLog, DisabledLevelsCostNoTokenAndNullLoggerIsFine) {
  FakeClock clock;
  std::vector<std::string> lines;
  Logger logger([&](LogLevel, std::string_view m) { lines.emplace_back(m); }, LogLevel::kWarn);
  ThrottledLog log(&logger, nullptr, {.burst = 1, .period = std::chrono::seconds(1)}, clock.fn());
  log.info("quiet %d", 1);
  EXPECT_TRUE(lines.empty());
  log.error("loud %d", 1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "loud 1");
  ThrottledLog none(nullptr, "x");
  none.warn("nothing %s", "happens");
}

}  // namespace
}  // namespace microvm
