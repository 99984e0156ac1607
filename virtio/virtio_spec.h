#pragma once
// Constants from the virtio 1.x specification, under their spec names. Kept in our namespace
// (not <linux/virtio_*.h>) so the virtio layer does not depend on the host's kernel headers;
// do not include those headers in the same translation unit.
#include <cstdint>

namespace microvm {

// Device IDs (§5).
inline constexpr uint32_t VIRTIO_ID_NET = 1;
inline constexpr uint32_t VIRTIO_ID_BLOCK = 2;
inline constexpr uint32_t VIRTIO_ID_CONSOLE = 3;
inline constexpr uint32_t VIRTIO_ID_RNG = 4;
inline constexpr uint32_t VIRTIO_ID_BALLOON = 5;
inline constexpr uint32_t VIRTIO_ID_PMEM = 27;

// Device status bits (§2.1).
inline constexpr uint8_t VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
inline constexpr uint8_t VIRTIO_CONFIG_S_DRIVER = 2;
inline constexpr uint8_t VIRTIO_CONFIG_S_DRIVER_OK = 4;
inline constexpr uint8_t VIRTIO_CONFIG_S_FEATURES_OK = 8;
inline constexpr uint8_t VIRTIO_CONFIG_S_NEEDS_RESET = 0x40;
inline constexpr uint8_t VIRTIO_CONFIG_S_FAILED = 0x80;

// Reserved (device-independent) feature bits (§6), as bit numbers.
inline constexpr unsigned VIRTIO_F_INDIRECT_DESC = 28;
inline constexpr unsigned VIRTIO_F_EVENT_IDX = 29;  // spec name: VIRTIO_F_RING_EVENT_IDX
inline constexpr unsigned VIRTIO_F_VERSION_1 = 32;
inline constexpr unsigned VIRTIO_F_ACCESS_PLATFORM = 33;

constexpr uint64_t feature_bit(unsigned bit) { return uint64_t{1} << bit; }
constexpr bool has_feature(uint64_t features, unsigned bit) { return (features & feature_bit(bit)) != 0; }

// Split virtqueue layout (§2.7).
inline constexpr uint16_t VIRTQ_DESC_F_NEXT = 1;
inline constexpr uint16_t VIRTQ_DESC_F_WRITE = 2;
inline constexpr uint16_t VIRTQ_DESC_F_INDIRECT = 4;
inline constexpr uint16_t VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
inline constexpr uint16_t VIRTQ_USED_F_NO_NOTIFY = 1;
inline constexpr uint32_t kMaxQueueSize = 32768;  // §2.7: Queue Size is at most 32768

// Guest-visible structures; the host is little-endian x86-64 like the spec's le fields.
struct VirtqDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16);

struct VirtqUsedElem {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(VirtqUsedElem) == 8);

}  // namespace microvm
