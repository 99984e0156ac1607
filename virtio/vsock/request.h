#pragma once
// The pure part of the TX path: what a packet header the guest wrote means, checked against
// the device's addressing and size limits before any connection state is touched. Also the
// parser of the one line a host client sends to open a connection (Firecracker's
// "CONNECT <port>\n").
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "virtio/vsock/vsock_spec.h"

namespace microvm {

struct VsockLimits {
  uint64_t guest_cid = kMinGuestCid;
  uint32_t max_payload = 64 << 10;  // largest RW payload accepted in one packet
};

// What to do with a TX packet.
enum class PacketVerdict {
  kAccept,  // well-formed: hand it to the connection state machine
  kReset,   // addressed correctly but unusable (unknown op or type, bad length): answer RST
  kDrop,    // not even addressed to us (wrong CIDs) or too malformed to answer: drop it
};

struct ParsedPacket {
  PacketVerdict verdict = PacketVerdict::kDrop;
  const char* why = nullptr;  // static text for kReset/kDrop; for counters and logs
  VsockHeader hdr{};          // our copy, the only one the device looks at afterwards
};

// `hdr` is a copy of the guest's header; `payload_bytes` is how many readable bytes follow it
// in the chain. The payload must hold all of hdr.len (§5.10.6.3), only RW carries one, and
// no packet may carry more than limits.max_payload.
ParsedPacket parse_packet(const VsockHeader& hdr, uint64_t payload_bytes, const VsockLimits& limits);
// The same, from raw bytes (fuzzers, tests): fewer than 44 bytes is a kDrop.
ParsedPacket parse_packet_bytes(std::span<const std::byte> bytes, const VsockLimits& limits);

// Parses "CONNECT <port>\n" (the newline included in `line`, optional '\r' before it). The
// port is decimal, 1 to 10 digits, at most 2^32-1. nullopt if anything else.
std::optional<uint32_t> parse_connect_line(std::string_view line);

}  // namespace microvm
