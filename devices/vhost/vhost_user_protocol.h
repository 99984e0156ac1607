#pragma once
// vhost-user wire format (QEMU docs/interop/vhost-user.rst), as far as this frontend speaks it.
// Every message is a 12-byte header (request, flags, payload size) followed by the payload;
// file descriptors travel as SCM_RIGHTS ancillary data on the same sendmsg/recvmsg.
#include <cstdint>

namespace microvm::vhost_user {

// Requests, frontend -> backend ("front-end message types").
enum class Request : uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kGetConfig = 24,
};

// Header flags: bits 0-1 the protocol version (always 1), bit 2 "this is a reply", bit 3 "the
// sender wants a REPLY_ACK".
inline constexpr uint32_t kVersion = 0x1;
inline constexpr uint32_t kVersionMask = 0x3;
inline constexpr uint32_t kFlagReply = 1u << 2;
inline constexpr uint32_t kFlagNeedReply = 1u << 3;

// Virtio feature bit 30 in GET/SET_FEATURES: the backend understands GET/SET_PROTOCOL_FEATURES.
inline constexpr uint64_t kFeatureProtocolFeatures = 1ull << 30;

// Protocol feature bits.
inline constexpr uint64_t kProtocolMq = 1ull << 0;
inline constexpr uint64_t kProtocolReplyAck = 1ull << 3;
inline constexpr uint64_t kProtocolConfig = 1ull << 9;

// SET_VRING_KICK/CALL payload: bits 0-7 the vring index; bit 8 "no fd attached".
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFd = 1ull << 8;

// The spec's baseline: at most 8 regions in SET_MEM_TABLE (more needs CONFIGURE_MEM_SLOTS).
inline constexpr uint32_t kMaxMemRegions = 8;
// No message we send or accept is larger than SET_MEM_TABLE; a reply claiming more is refused.
inline constexpr uint32_t kMaxPayload = 8 + kMaxMemRegions * 32;
// fds one message may carry (SET_MEM_TABLE: one per region).
inline constexpr uint32_t kMaxFds = kMaxMemRegions;

struct Header {
  uint32_t request;
  uint32_t flags;
  uint32_t size;  // payload bytes after the header
};
static_assert(sizeof(Header) == 12);

struct VringState {
  uint32_t index;
  uint32_t num;
};

struct VringAddr {
  uint32_t index;
  uint32_t flags;            // bit 0: log_guest_addr is valid (dirty logging; unused here)
  uint64_t desc_user_addr;   // frontend virtual addresses, translated by the backend through
  uint64_t used_user_addr;   // the memory table's userspace_addr; note the used ring comes
  uint64_t avail_user_addr;  // before the available ring in this struct
  uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40);

struct MemRegionWire {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;
  uint64_t mmap_offset;  // offset into the region's fd
};
static_assert(sizeof(MemRegionWire) == 32);

struct MemTableWire {
  uint32_t nregions;
  uint32_t padding;
  MemRegionWire regions[kMaxMemRegions];
};
static_assert(sizeof(MemTableWire) == kMaxPayload);

}  // namespace microvm::vhost_user
