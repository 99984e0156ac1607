#pragma once
// Token buckets that keep a hostile guest from flooding the log: each message key (a log
// call site) gets a burst, then a steady trickle, and the lines in between are counted.
// No global state: a device (or transport, or image) owns its limiter.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>

namespace microvm {

// Nanoseconds on a monotonic clock. Replaceable so tests can drive time without sleeping.
using MonotonicClock = std::function<int64_t()>;
int64_t steady_now_ns();

// The shape of a bucket: `burst` tokens, refilled at one per `period`.
struct RateShape {
  uint32_t burst = 10;
  std::chrono::nanoseconds period = std::chrono::seconds(1);
};

// A token bucket kept in one atomic (the "generic cell rate" form: it stores when the bucket
// would be full again), so callers on different threads never block each other.
class TokenBucket {
 public:
  TokenBucket() : TokenBucket(RateShape{}) {}
  explicit TokenBucket(RateShape shape) { set_shape(shape); }

  // Not thread-safe; call before the bucket is shared.
  void set_shape(RateShape shape);
  // Takes one token at time `now_ns` if there is one. Thread-safe, lock-free.
  bool take(int64_t now_ns);

 private:
  int64_t period_ns_ = 0;
  int64_t tolerance_ns_ = 0;  // (burst - 1) periods: how far past now the schedule may run
  // The time at which every token taken so far is paid for (refilled).
  std::atomic<int64_t> due_ns_{std::numeric_limits<int64_t>::min()};
};

// One token bucket per message key, in a fixed table: the key is the address of a call
// site's format string, so each call site has its own budget. Keys beyond the table share
// one overflow bucket (still limited, only more coarsely).
class LogThrottle {
 public:
  static constexpr size_t kSlots = 16;

  explicit LogThrottle(RateShape shape = {}, MonotonicClock clock = steady_now_ns);

  // True when a line for `key` may be written now; `suppressed` (if given) then receives how
  // many lines for that key were dropped since the last one allowed.
  bool allow(const void* key, uint64_t* suppressed = nullptr);

 private:
  struct Slot {
    std::atomic<const void*> key{nullptr};
    TokenBucket bucket;
    std::atomic<uint64_t> dropped{0};
  };
  Slot& slot_for(const void* key);

  MonotonicClock clock_;
  std::array<Slot, kSlots> slots_;  // claimed once (CAS on the key), never reused
  Slot overflow_;
};

}  // namespace microvm
