#include "virtio/vsock/request.h"

#include <cstring>

namespace microvm {
namespace {

ParsedPacket verdict(PacketVerdict v, const char* why, const VsockHeader& hdr) { return ParsedPacket{v, why, hdr}; }

bool known_op(uint16_t op) { return op >= VIRTIO_VSOCK_OP_REQUEST && op <= VIRTIO_VSOCK_OP_CREDIT_REQUEST; }

}  // namespace

ParsedPacket parse_packet(const VsockHeader& hdr, uint64_t payload_bytes, const VsockLimits& limits) {
  // Addressing first: a packet that is not from our guest's CID to the host cannot be
  // answered meaningfully (§5.10.6.3: the device drops packets with a wrong source CID).
  if (hdr.src_cid != limits.guest_cid) return verdict(PacketVerdict::kDrop, "source CID is not the guest's", hdr);
  if (hdr.dst_cid != VMADDR_CID_HOST) return verdict(PacketVerdict::kDrop, "destination CID is not the host", hdr);
  // An RST is never answered with an RST, whatever else is wrong with it: two misbehaving
  // ends must not ping-pong.
  if (hdr.op == VIRTIO_VSOCK_OP_RST) {
    if (hdr.len != 0) return verdict(PacketVerdict::kDrop, "RST with a payload", hdr);
    return verdict(PacketVerdict::kAccept, nullptr, hdr);
  }
  if (hdr.type != VIRTIO_VSOCK_TYPE_STREAM) return verdict(PacketVerdict::kReset, "socket type is not STREAM", hdr);
  if (!known_op(hdr.op)) return verdict(PacketVerdict::kReset, "unknown operation", hdr);
  if (hdr.op != VIRTIO_VSOCK_OP_RW && hdr.len != 0)
    return verdict(PacketVerdict::kReset, "payload on a control packet", hdr);
  if (hdr.len > limits.max_payload)
    return verdict(PacketVerdict::kReset, "payload larger than the maximum packet", hdr);
  if (hdr.len > payload_bytes) return verdict(PacketVerdict::kReset, "header length past the end of the buffers", hdr);
  if (hdr.op == VIRTIO_VSOCK_OP_SHUTDOWN &&
      (hdr.flags & ~(VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE | VIRTIO_VSOCK_SHUTDOWN_F_SEND)))
    return verdict(PacketVerdict::kReset, "unknown shutdown flags", hdr);
  return verdict(PacketVerdict::kAccept, nullptr, hdr);
}

ParsedPacket parse_packet_bytes(std::span<const std::byte> bytes, const VsockLimits& limits) {
  if (bytes.size() < sizeof(VsockHeader)) return ParsedPacket{PacketVerdict::kDrop, "shorter than a header", {}};
  VsockHeader hdr;
  std::memcpy(&hdr, bytes.data(), sizeof hdr);
  return parse_packet(hdr, bytes.size() - sizeof hdr, limits);
}

std::optional<uint32_t> parse_connect_line(std::string_view line) {
  constexpr std::string_view kVerb = "CONNECT ";
  if (!line.starts_with(kVerb) || !line.ends_with('\n')) return std::nullopt;
  line.remove_prefix(kVerb.size());
  line.remove_suffix(1);
  if (line.ends_with('\r')) line.remove_suffix(1);
  if (line.empty() || line.size() > 10) return std::nullopt;
  uint64_t port = 0;
  for (char c : line) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<uint64_t>(c - '0');
  }
  if (port > UINT32_MAX) return std::nullopt;
  return static_cast<uint32_t>(port);
}

}  // namespace microvm
