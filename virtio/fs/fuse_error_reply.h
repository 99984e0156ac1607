#pragma once
// The one FUSE reply a virtio-fs device without a backend can give: "this request failed".
// A pure function of one descriptor chain, so it is unit-testable and fuzzable on its own.
#include <cstdint>

#include "virtio/descriptor_chain.h"

namespace microvm {

// FUSE wire headers (include/uapi/linux/fuse.h), little endian on x86.
struct FuseInHeader {
  uint32_t len;
  uint32_t opcode;
  uint64_t unique;
  uint64_t nodeid;
  uint32_t uid, gid, pid;
  uint16_t total_extlen;
  uint16_t padding;
};
static_assert(sizeof(FuseInHeader) == 40);
struct FuseOutHeader {
  uint32_t len;   // bytes of the reply, header included
  int32_t error;  // 0 or a negated errno
  uint64_t unique;
};
static_assert(sizeof(FuseOutHeader) == 16);

// Writes a FuseOutHeader carrying `negative_errno` (e.g. -ENOTCONN) and the request's unique
// id into the chain's device-writable part and returns the used length to report (16), or
// 0 when the request has no room for a reply (FORGET on the high-priority queue has none;
// the driver expects none). A device-readable part shorter than the in-header gets unique 0:
// the guest's driver finds its request by the descriptor head, not by unique.
uint32_t write_fuse_error_reply(const DescriptorChain& chain, int32_t negative_errno);

}  // namespace microvm
