#pragma once
// A device's I/O rate limit (Firecracker's rate limiters): a bytes bucket and an operations
// bucket (requests, or frames for virtio-net), each refilled at `per_second` up to `burst`.
// Requests over the limit wait; they are never failed or dropped.
#include <cstdint>
#include <optional>

namespace microvm {

struct BucketLimit {
  uint64_t per_second = 0;  // 0: unlimited
  uint64_t burst = 0;       // bucket size; 0: one second's worth (per_second)
  bool limited() const { return per_second != 0; }
};

struct IoLimit {
  BucketLimit bytes;
  BucketLimit ops;
  bool limited() const { return bytes.limited() || ops.limited(); }
};

// A run-time change (PATCH /drives, PATCH /network-interfaces): each bucket given replaces the
// old limit (per_second 0: no limit); nullopt keeps that bucket's limit. Both buckets start
// full after a change.
struct RateLimitUpdate {
  std::optional<BucketLimit> bytes;
  std::optional<BucketLimit> ops;
  bool empty() const { return !bytes && !ops; }
};

}  // namespace microvm
