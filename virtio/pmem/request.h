#pragma once
// Pure parse of a virtio-pmem request chain (§5.19.6): a le32 type the driver wrote, and
// room for a le32 status we write back. No I/O here.
#include <cstddef>
#include <cstdint>
#include <expected>

#include "virtio/descriptor_chain.h"

namespace microvm {

enum class PmemOp { kFlush, kUnknown };

struct PmemRequest {
  PmemOp op = PmemOp::kUnknown;
  uint32_t type = 0;            // as the driver wrote it
  std::byte* status = nullptr;  // host address of the 4-byte response (inside guest RAM)
};

enum class PmemReject {
  kNoStatus,  // fewer than 4 device-writable bytes in one buffer: nowhere to answer
  kNoType,    // fewer than 4 device-readable bytes
};
const char* to_string(PmemReject r);

// On kNoType the status pointer is still set, so the device can answer EIO.
struct PmemParseError {
  PmemReject reason;
  std::byte* status = nullptr;
};

[[nodiscard]] std::expected<PmemRequest, PmemParseError> parse_pmem_request(const DescriptorChain& chain);

}  // namespace microvm
