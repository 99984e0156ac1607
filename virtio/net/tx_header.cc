#include "virtio/net/tx_header.h"

#include "virtio/virtio_spec.h"

namespace microvm {

const char* check_tx_header(const VirtioNetHdr& hdr, uint64_t frame_len, uint64_t features) {
  if (frame_len < kMinEthernetFrame) return "frame shorter than an Ethernet header";
  if (frame_len + sizeof(VirtioNetHdr) > kMaxNetFrame) return "frame longer than 64 KiB";
  // §5.1.6.2: DATA_VALID is for the receive side; the driver only sets NEEDS_CSUM.
  if (hdr.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM) return "unknown header flags";
  if (hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    // §5.1.6.2.1: NEEDS_CSUM only with VIRTIO_NET_F_CSUM; the checksum field must lie in the frame.
    if (!has_feature(features, VIRTIO_NET_F_CSUM)) return "NEEDS_CSUM without VIRTIO_NET_F_CSUM";
    if (uint64_t{hdr.csum_start} + hdr.csum_offset + 2 > frame_len) return "checksum field outside the frame";
  }
  // The num_buffers field is reserved on transmit (§5.1.6.2); the kernel ignores it too.
  uint8_t gso = hdr.gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
  if (gso == VIRTIO_NET_HDR_GSO_NONE) {
    if (hdr.gso_type & VIRTIO_NET_HDR_GSO_ECN) return "ECN bit without a GSO type";
    return nullptr;
  }
  // §5.1.6.2.1: a GSO type needs the matching HOST_* feature and NEEDS_CSUM.
  switch (gso) {
    case VIRTIO_NET_HDR_GSO_TCPV4:
      if (!has_feature(features, VIRTIO_NET_F_HOST_TSO4)) return "TCPv4 GSO not negotiated";
      break;
    case VIRTIO_NET_HDR_GSO_TCPV6:
      if (!has_feature(features, VIRTIO_NET_F_HOST_TSO6)) return "TCPv6 GSO not negotiated";
      break;
    case VIRTIO_NET_HDR_GSO_UDP:
      if (!has_feature(features, VIRTIO_NET_F_HOST_UFO)) return "UDP GSO not negotiated";
      break;
    default:
      return "unknown GSO type";
  }
  if ((hdr.gso_type & VIRTIO_NET_HDR_GSO_ECN) && !has_feature(features, VIRTIO_NET_F_HOST_ECN))
    return "GSO ECN not negotiated";
  if (!(hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) return "GSO frame without NEEDS_CSUM";
  if (hdr.gso_size == 0) return "GSO frame with gso_size 0";
  if (hdr.hdr_len > frame_len) return "GSO header length past the frame";
  return nullptr;
}

}  // namespace microvm
