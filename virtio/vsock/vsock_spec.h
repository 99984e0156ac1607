#pragma once
// virtio-vsock constants and layouts (virtio 1.2 §5.10), under their spec names.
#include <cstddef>
#include <cstdint>

namespace microvm {

inline constexpr uint32_t VIRTIO_ID_VSOCK = 19;

// Well-known CIDs (§5.10.4): the host is always 2; guests get 3 and up.
inline constexpr uint64_t VMADDR_CID_HOST = 2;
inline constexpr uint64_t kMinGuestCid = 3;

// Packet types (§5.10.6).
inline constexpr uint16_t VIRTIO_VSOCK_TYPE_STREAM = 1;
inline constexpr uint16_t VIRTIO_VSOCK_TYPE_SEQPACKET = 2;

// Operations (§5.10.6).
inline constexpr uint16_t VIRTIO_VSOCK_OP_INVALID = 0;
inline constexpr uint16_t VIRTIO_VSOCK_OP_REQUEST = 1;
inline constexpr uint16_t VIRTIO_VSOCK_OP_RESPONSE = 2;
inline constexpr uint16_t VIRTIO_VSOCK_OP_RST = 3;
inline constexpr uint16_t VIRTIO_VSOCK_OP_SHUTDOWN = 4;
inline constexpr uint16_t VIRTIO_VSOCK_OP_RW = 5;
inline constexpr uint16_t VIRTIO_VSOCK_OP_CREDIT_UPDATE = 6;
inline constexpr uint16_t VIRTIO_VSOCK_OP_CREDIT_REQUEST = 7;

// SHUTDOWN flags (§5.10.6.5): the sender will receive / send no more data.
inline constexpr uint32_t VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE = 1;
inline constexpr uint32_t VIRTIO_VSOCK_SHUTDOWN_F_SEND = 2;

// Event queue (§5.10.6.7).
inline constexpr uint32_t VIRTIO_VSOCK_EVENT_TRANSPORT_RESET = 0;

// The packet header, little-endian on the wire; x86 is little-endian so fields are used as is.
struct [[gnu::packed]] VsockHeader {
  uint64_t src_cid;
  uint64_t dst_cid;
  uint32_t src_port;
  uint32_t dst_port;
  uint32_t len;
  uint16_t type;
  uint16_t op;
  uint32_t flags;
  uint32_t buf_alloc;
  uint32_t fwd_cnt;
};
static_assert(sizeof(VsockHeader) == 44);

// Config space (§5.10.4): le64 guest_cid.
inline constexpr size_t kVsockConfigSize = 8;

}  // namespace microvm
