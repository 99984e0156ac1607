#include "base/io_rate_limiter.h"

#include <algorithm>

namespace microvm {

namespace {
constexpr __int128 kNanoPerToken = 1'000'000'000;
}

RefillBucket::RefillBucket(BucketLimit limit, int64_t now_ns) : rate_(limit.per_second), last_ns_(now_ns) {
  capacity_ = static_cast<__int128>(limit.burst ? limit.burst : limit.per_second) * kNanoPerToken;
  credit_ = capacity_;
  one_time_left_ = rate_ ? limit.one_time_burst : 0;  // unlimited: nothing to spend
}

__int128 RefillBucket::cost(uint64_t n) const { return static_cast<__int128>(n) * kNanoPerToken; }

void RefillBucket::refill(int64_t now_ns) {
  if (now_ns <= last_ns_) return;  // a clock that does not move forward adds nothing
  // rate tokens per second = rate billionths of a token per nanosecond.
  credit_ = std::min(capacity_, credit_ + static_cast<__int128>(now_ns - last_ns_) * rate_);
  last_ns_ = now_ns;
}

int64_t RefillBucket::wait_ns(uint64_t n, int64_t now_ns) {
  if (!rate_) return 0;
  if (n <= one_time_left_) return 0;
  refill(now_ns);
  // What the one-time burst cannot pay comes from the bucket, under the usual rules.
  __int128 need = std::min(cost(n - one_time_left_), capacity_);
  if (credit_ >= need) return 0;
  __int128 missing = need - credit_;
  return static_cast<int64_t>((missing + rate_ - 1) / rate_);
}

void RefillBucket::take(uint64_t n) {
  if (!rate_) return;
  uint64_t from_burst = std::min(n, one_time_left_);
  one_time_left_ -= from_burst;
  credit_ -= cost(n - from_burst);
}

int64_t RefillBucket::tokens(int64_t now_ns) {
  refill(now_ns);
  return static_cast<int64_t>(credit_ / kNanoPerToken);
}

int64_t IoRateLimiter::admit(uint64_t bytes, uint64_t ops, int64_t now_ns) {
  int64_t wait = std::max(bytes_.wait_ns(bytes, now_ns), ops_.wait_ns(ops, now_ns));
  if (wait > 0) return wait;
  bytes_.take(bytes);
  ops_.take(ops);
  return 0;
}

}  // namespace microvm
