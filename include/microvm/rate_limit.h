#pragma once
// A device's I/O rate limit (Firecracker's rate limiters): a bytes bucket and an operations
// bucket (requests, or frames for virtio-net), each refilled at `per_second` up to `burst`,
// plus an optional one-time budget spent before the bucket and never refilled.
// Requests over the limit wait; they are never failed or dropped.
#include <cstdint>
#include <optional>

namespace microvm {

struct BucketLimit {
  uint64_t per_second = 0;      // 0: unlimited
  uint64_t burst = 0;           // bucket size; 0: one second's worth (per_second)
  uint64_t one_time_burst = 0;  // extra tokens at the start, spent first, never refilled
  bool limited() const { return per_second != 0; }
};

struct IoLimit {
  BucketLimit bytes;
  BucketLimit ops;
  bool limited() const { return bytes.limited() || ops.limited(); }
};

// A run-time change (PATCH /drives, PATCH /network-interfaces): each bucket given replaces the
// old limit (per_second 0: no limit) and starts full, with its one_time_burst; nullopt keeps
// that bucket as it is (its tokens and what is left of its one-time burst).
struct RateLimitUpdate {
  std::optional<BucketLimit> bytes;
  std::optional<BucketLimit> ops;
  bool empty() const { return !bytes && !ops; }
};

}  // namespace microvm
