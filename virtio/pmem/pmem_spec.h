#pragma once
// virtio-pmem constants and structures (virtio 1.2 §5.19), under their spec names.
#include <cstdint>

namespace microvm {

struct VirtioPmemConfig {
  uint64_t start;  // guest-physical address of the region
  uint64_t size;   // its length in bytes
};
static_assert(sizeof(VirtioPmemConfig) == 16);

inline constexpr uint32_t VIRTIO_PMEM_REQ_TYPE_FLUSH = 0;
inline constexpr uint32_t VIRTIO_PMEM_RESP_TYPE_OK = 0;
inline constexpr uint32_t VIRTIO_PMEM_RESP_TYPE_EIO = 1;

}  // namespace microvm
