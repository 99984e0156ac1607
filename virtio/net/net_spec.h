#pragma once
// virtio-net constants and layouts (virtio 1.x §5.1), under their spec names.
#include <cstdint>

namespace microvm {

// Feature bits (§5.1.3), as bit numbers.
inline constexpr unsigned VIRTIO_NET_F_CSUM = 0;
inline constexpr unsigned VIRTIO_NET_F_GUEST_CSUM = 1;
inline constexpr unsigned VIRTIO_NET_F_MTU = 3;
inline constexpr unsigned VIRTIO_NET_F_MAC = 5;
inline constexpr unsigned VIRTIO_NET_F_GUEST_TSO4 = 7;
inline constexpr unsigned VIRTIO_NET_F_GUEST_TSO6 = 8;
inline constexpr unsigned VIRTIO_NET_F_GUEST_ECN = 9;
inline constexpr unsigned VIRTIO_NET_F_GUEST_UFO = 10;
inline constexpr unsigned VIRTIO_NET_F_HOST_TSO4 = 11;
inline constexpr unsigned VIRTIO_NET_F_HOST_TSO6 = 12;
inline constexpr unsigned VIRTIO_NET_F_HOST_ECN = 13;
inline constexpr unsigned VIRTIO_NET_F_HOST_UFO = 14;
inline constexpr unsigned VIRTIO_NET_F_MRG_RXBUF = 15;
inline constexpr unsigned VIRTIO_NET_F_STATUS = 16;

// Config status (§5.1.4).
inline constexpr uint16_t VIRTIO_NET_S_LINK_UP = 1;

// Header flags and GSO types (§5.1.6).
inline constexpr uint8_t VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
inline constexpr uint8_t VIRTIO_NET_HDR_F_DATA_VALID = 2;
inline constexpr uint8_t VIRTIO_NET_HDR_GSO_NONE = 0;
inline constexpr uint8_t VIRTIO_NET_HDR_GSO_TCPV4 = 1;
inline constexpr uint8_t VIRTIO_NET_HDR_GSO_UDP = 3;
inline constexpr uint8_t VIRTIO_NET_HDR_GSO_TCPV6 = 4;
inline constexpr uint8_t VIRTIO_NET_HDR_GSO_ECN = 0x80;

// struct virtio_net_hdr_v1 (§5.1.6): num_buffers is present with VIRTIO_F_VERSION_1.
struct VirtioNetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;
};
static_assert(sizeof(VirtioNetHdr) == 12);

// Config layout (§5.1.4): mac[6], status, max_virtqueue_pairs, mtu.
inline constexpr uint64_t kNetConfigMac = 0;
inline constexpr uint64_t kNetConfigStatus = 6;
inline constexpr uint64_t kNetConfigMaxPairs = 8;
inline constexpr uint64_t kNetConfigMtu = 10;
inline constexpr uint64_t kNetConfigSize = 12;

// Largest frame (header + Ethernet frame with a 64 KiB GSO payload) we move in either
// direction; a TX chain longer than this is hostile and dropped.
inline constexpr uint32_t kMaxNetFrame = 65562;
// Smallest Ethernet frame worth sending: destination, source, ethertype.
inline constexpr uint32_t kMinEthernetFrame = 14;

}  // namespace microvm
