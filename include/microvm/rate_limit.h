#pragma once
// A device's I/O rate limit (Firecracker's rate limiters): a bytes bucket and an operations
// bucket (requests, or frames for virtio-net), each refilled at `per_second` up to `burst`.
// Requests over the limit wait; they are never failed or dropped.
#include <cstdint>

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

}  // namespace microvm
