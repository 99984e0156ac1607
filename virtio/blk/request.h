#pragma once
// A pure parse of a virtio-blk descriptor chain into a request (§5.2.6): no I/O, no device
// state, so it is the unit-test and fuzz target for everything the guest controls.
#include <sys/uio.h>

#include <cstdint>
#include <expected>
#include <vector>

#include "virtio/descriptor_chain.h"

namespace microvm {

// What the device allows; from the disk size and the negotiated features.
struct BlkLimits {
  uint64_t capacity_sectors = 0;  // disk size / 512
  bool read_only = false;
  bool discard = false;       // VIRTIO_BLK_F_DISCARD negotiated
  bool write_zeroes = false;  // VIRTIO_BLK_F_WRITE_ZEROES negotiated
  uint32_t max_discard_sectors = 0;
  uint32_t max_discard_seg = 0;
  uint32_t max_write_zeroes_sectors = 0;
  uint32_t max_write_zeroes_seg = 0;
  uint32_t max_data_segments = 1024;     // iovecs per I/O (IOV_MAX)
  uint64_t max_data_bytes = 1ull << 30;  // completions report int32 byte counts
};

enum class BlkOp { kRead, kWrite, kFlush, kGetId, kDiscard, kWriteZeroes };

struct BlkSegment {
  uint64_t offset = 0;  // bytes
  uint64_t len = 0;     // bytes
  bool unmap = false;   // write-zeroes may deallocate
};

struct BlkRequest {
  BlkOp op = BlkOp::kRead;
  uint64_t offset = 0;               // byte offset (read/write)
  std::vector<iovec> data;           // read/get-id: device-writable; write: device-readable
  uint64_t data_len = 0;             // bytes in `data`
  std::vector<BlkSegment> segments;  // discard / write-zeroes, checked against the disk
  std::byte* status = nullptr;       // host address of the status byte (last writable byte)
};

enum class BlkReject {
  kNoStatus,     // no device-writable byte for the status: cannot even report the error
  kBadHeader,    // fewer than 16 readable bytes
  kUnsupported,  // unknown or not-negotiated type, reserved flags
  kBadLength,    // data length zero, not a multiple of 512, too many segments or bytes
  kOutOfRange,   // sector arithmetic overflows or runs past the end of the disk
  kReadOnly,     // write-type request on a read-only disk
  kBadSegments,  // malformed discard / write-zeroes payload
};

struct BlkParseError {
  BlkReject reason;
  uint8_t status;         // VIRTIO_BLK_S_IOERR or VIRTIO_BLK_S_UNSUPP
  std::byte* status_ptr;  // where to write it; nullptr for kNoStatus
  const char* what;       // static text for the log
};

const char* blk_reject_name(BlkReject reason);

// Parses `chain` (which must be valid()) into `out`, reusing out's vectors. On error nothing
// may be submitted; the caller writes error.status at error.status_ptr (if any).
[[nodiscard]] std::expected<void, BlkParseError> parse_request(const DescriptorChain& chain, const BlkLimits& limits,
                                                               BlkRequest& out);

}  // namespace microvm
