#include "base/rate_limit.h"

#include <algorithm>

namespace microvm {

int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void TokenBucket::set_shape(RateShape shape) {
  period_ns_ = std::max<int64_t>(1, shape.period.count());
  tolerance_ns_ = period_ns_ * (std::max<uint32_t>(shape.burst, 1) - 1);
}

bool TokenBucket::take(int64_t now_ns) {
  int64_t due = due_ns_.load(std::memory_order_relaxed);
  for (;;) {
    // A bucket idle long enough is full: its schedule restarts from now.
    int64_t start = std::max(due, now_ns);
    if (start - now_ns > tolerance_ns_) return false;
    if (due_ns_.compare_exchange_weak(due, start + period_ns_, std::memory_order_relaxed)) return true;
  }
}

LogThrottle::LogThrottle(RateShape shape, MonotonicClock clock) : clock_(std::move(clock)) {
  for (auto& s : slots_) s.bucket.set_shape(shape);
  overflow_.bucket.set_shape(shape);
}

LogThrottle::Slot& LogThrottle::slot_for(const void* key) {
  if (!key) return overflow_;  // an empty slot's key; never claim one with it
  for (auto& s : slots_) {
    const void* k = s.key.load(std::memory_order_acquire);
    if (k == key) return s;
    if (k == nullptr) {
      if (s.key.compare_exchange_strong(k, key, std::memory_order_acq_rel) || k == key) return s;
      // Another key won this slot meanwhile; keep looking.
    }
  }
  return overflow_;
}

bool LogThrottle::allow(const void* key, uint64_t* suppressed) {
  Slot& s = slot_for(key);
  if (!s.bucket.take(clock_())) {
    s.dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  uint64_t d = s.dropped.exchange(0, std::memory_order_relaxed);
  if (suppressed) *suppressed = d;
  return true;
}

}  // namespace microvm
