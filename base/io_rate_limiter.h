#pragma once
// Per-device I/O limits (Firecracker's rate limiters): a bytes bucket and an operations
// bucket, each refilled at a steady rate up to a burst. Over the limit, a device stops taking
// requests from the guest and waits (IoThrottle arms a timer for the time this returns); it
// never fails one. Single-threaded (the device's event loop); time is passed in, so tests
// drive it without sleeping.
#include <cstdint>

#include "microvm/rate_limit.h"

namespace microvm {

// A token bucket with exact integer refill (credit counted in billionths of a token, so
// no rounding loses or invents tokens). Starts full, with the limit's one-time burst on top:
// those tokens are spent first and never come back (Firecracker's one_time_burst).
class RefillBucket {
 public:
  RefillBucket() = default;
  RefillBucket(BucketLimit limit, int64_t now_ns);

  bool limited() const { return rate_ != 0; }
  // Nanoseconds until `n` tokens may be taken (0: now). A cost larger than the bucket may be
  // taken once the bucket is full, and leaves it in debt: a big request is delayed, never
  // refused, and the rate still holds over time.
  int64_t wait_ns(uint64_t n, int64_t now_ns);
  void take(uint64_t n);
  // Whole tokens available now, not counting the one-time burst (for tests and metrics).
  int64_t tokens(int64_t now_ns);
  uint64_t one_time_left() const { return one_time_left_; }

 private:
  void refill(int64_t now_ns);
  __int128 cost(uint64_t n) const;

  uint64_t rate_ = 0;           // tokens per second
  __int128 capacity_ = 0;       // in billionths of a token
  __int128 credit_ = 0;         // may be negative (debt)
  uint64_t one_time_left_ = 0;  // whole tokens; taken before credit_
  int64_t last_ns_ = 0;
};

class IoRateLimiter {
 public:
  IoRateLimiter() = default;
  IoRateLimiter(IoLimit limit, int64_t now_ns) : bytes_(limit.bytes, now_ns), ops_(limit.ops, now_ns) {}

  bool limited() const { return bytes_.limited() || ops_.limited(); }
  // Takes `bytes` and `ops` from both buckets and returns 0 when both allow it; otherwise
  // takes nothing and returns how long to wait before asking again.
  int64_t admit(uint64_t bytes, uint64_t ops, int64_t now_ns);
  // Replaces one bucket (full again, with its one-time burst); the other keeps its state.
  void set_bytes(BucketLimit limit, int64_t now_ns) { bytes_ = RefillBucket(limit, now_ns); }
  void set_ops(BucketLimit limit, int64_t now_ns) { ops_ = RefillBucket(limit, now_ns); }
  const RefillBucket& bytes() const { return bytes_; }
  const RefillBucket& ops() const { return ops_; }

 private:
  RefillBucket bytes_;
  RefillBucket ops_;
};

}  // namespace microvm
