#include "virtio/blk/request.h"

#include <algorithm>

#include "virtio/blk/blk_spec.h"

namespace microvm {
namespace {

using Unexpected = std::unexpected<BlkParseError>;

Unexpected reject(BlkReject reason, uint8_t status, std::byte* status_ptr, const char* what) {
  return Unexpected(BlkParseError{reason, status, status_ptr, what});
}

// Checks [sector * 512, + len) against the disk without overflow. Returns the byte offset.
std::optional<uint64_t> checked_range(uint64_t sector, uint64_t len, uint64_t capacity_sectors) {
  uint64_t offset, end;
  if (__builtin_mul_overflow(sector, kSectorSize, &offset)) return std::nullopt;
  if (__builtin_add_overflow(offset, len, &end)) return std::nullopt;
  // capacity_sectors comes from a real file size, so capacity * 512 cannot overflow.
  if (end > capacity_sectors * kSectorSize) return std::nullopt;
  return offset;
}

std::expected<void, BlkParseError> parse_segments(Reader& reader, const BlkLimits& limits, bool discard,
                                                  std::byte* status, BlkRequest& out) {
  uint32_t max_seg = discard ? limits.max_discard_seg : limits.max_write_zeroes_seg;
  uint32_t max_sectors = discard ? limits.max_discard_sectors : limits.max_write_zeroes_sectors;
  uint64_t bytes = reader.remaining();
  if (bytes == 0 || bytes % sizeof(VirtioBlkDiscardWriteZeroes) != 0)
    return reject(BlkReject::kBadSegments, VIRTIO_BLK_S_IOERR, status, "segment payload is not a multiple of 16 bytes");
  // §5.2.6.2: no more segments than max_discard_seg / max_write_zeroes_seg.
  if (bytes / sizeof(VirtioBlkDiscardWriteZeroes) > max_seg)
    return reject(BlkReject::kBadSegments, VIRTIO_BLK_S_IOERR, status, "too many segments");
  while (reader.remaining() > 0) {
    auto seg = reader.read_obj<VirtioBlkDiscardWriteZeroes>();  // copy, then check the copy
    if (!seg) return reject(BlkReject::kBadSegments, VIRTIO_BLK_S_IOERR, status, "short segment");
    // §5.2.6.2: unknown flags, and unmap on a discard, are UNSUPP.
    if (seg->flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
      return reject(BlkReject::kUnsupported, VIRTIO_BLK_S_UNSUPP, status, "reserved segment flags set");
    if (discard && (seg->flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))
      return reject(BlkReject::kUnsupported, VIRTIO_BLK_S_UNSUPP, status, "unmap flag on a discard segment");
    if (seg->num_sectors == 0 || seg->num_sectors > max_sectors)
      return reject(BlkReject::kBadSegments, VIRTIO_BLK_S_IOERR, status,
                    "segment sector count is 0 or above the limit");
    uint64_t len = uint64_t{seg->num_sectors} * kSectorSize;
    auto offset = checked_range(seg->sector, len, limits.capacity_sectors);
    if (!offset) return reject(BlkReject::kOutOfRange, VIRTIO_BLK_S_IOERR, status, "segment past the end of the disk");
    out.segments.push_back({*offset, len, (seg->flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) != 0});
  }
  return {};
}

std::expected<void, BlkParseError> parse_data(BufferCursor& data, uint64_t sector, const BlkLimits& limits,
                                              std::byte* status, BlkRequest& out) {
  uint64_t len = data.remaining();
  // §5.2.6.1: data of IN/OUT is a multiple of 512 bytes. Empty transfers are refused too.
  if (len == 0 || len % kSectorSize != 0)
    return reject(BlkReject::kBadLength, VIRTIO_BLK_S_IOERR, status, "data length is 0 or not a multiple of 512");
  if (len > limits.max_data_bytes)
    return reject(BlkReject::kBadLength, VIRTIO_BLK_S_IOERR, status, "request too large");
  auto offset = checked_range(sector, len, limits.capacity_sectors);
  if (!offset) return reject(BlkReject::kOutOfRange, VIRTIO_BLK_S_IOERR, status, "request past the end of the disk");
  if (!data.take_iovecs(len, out.data)) return reject(BlkReject::kBadLength, VIRTIO_BLK_S_IOERR, status, "short data");
  if (out.data.size() > limits.max_data_segments)
    return reject(BlkReject::kBadLength, VIRTIO_BLK_S_IOERR, status, "too many data segments");
  out.offset = *offset;
  out.data_len = len;
  return {};
}

}  // namespace

const char* blk_reject_name(BlkReject reason) {
  switch (reason) {
    case BlkReject::kNoStatus:
      return "no status byte";
    case BlkReject::kBadHeader:
      return "bad header";
    case BlkReject::kUnsupported:
      return "unsupported";
    case BlkReject::kBadLength:
      return "bad length";
    case BlkReject::kOutOfRange:
      return "out of range";
    case BlkReject::kReadOnly:
      return "read-only";
    case BlkReject::kBadSegments:
      return "bad segments";
  }
  return "?";
}

std::expected<void, BlkParseError> parse_request(const DescriptorChain& chain, const BlkLimits& limits,
                                                 BlkRequest& out) {
  out.data.clear();
  out.segments.clear();
  out.data_len = 0;
  out.offset = 0;
  out.status = nullptr;

  // §5.2.6: the status is the last device-writable byte. Found first, so every later error
  // can be reported through it.
  Writer writer = chain.writer();
  auto status = writer.split_last(1);
  if (!status) return reject(BlkReject::kNoStatus, VIRTIO_BLK_S_IOERR, nullptr, "no device-writable status byte");
  out.status = status->data();

  Reader reader = chain.reader();
  auto hdr = reader.read_obj<VirtioBlkOuthdr>();  // a copy: the guest cannot change it under us
  if (!hdr)
    return reject(BlkReject::kBadHeader, VIRTIO_BLK_S_IOERR, out.status, "request header shorter than 16 bytes");

  switch (hdr->type) {
    case VIRTIO_BLK_T_IN:
      out.op = BlkOp::kRead;
      return parse_data(writer, hdr->sector, limits, out.status, out);
    case VIRTIO_BLK_T_OUT:
      out.op = BlkOp::kWrite;
      // §5.2.6.2: writes to a read-only device fail with IOERR and write nothing.
      if (limits.read_only)
        return reject(BlkReject::kReadOnly, VIRTIO_BLK_S_IOERR, out.status, "write to a read-only disk");
      return parse_data(reader, hdr->sector, limits, out.status, out);
    case VIRTIO_BLK_T_FLUSH:
      // The sector field of a flush is reserved (driver sets 0); it is not checked.
      out.op = BlkOp::kFlush;
      return {};
    case VIRTIO_BLK_T_GET_ID: {
      out.op = BlkOp::kGetId;
      // The answer is up to 20 bytes; a shorter buffer gets a truncated id.
      uint64_t len = std::min<uint64_t>(writer.remaining(), VIRTIO_BLK_ID_BYTES);
      if (len == 0)
        return reject(BlkReject::kBadLength, VIRTIO_BLK_S_IOERR, out.status, "GET_ID without a data buffer");
      if (!writer.take_iovecs(len, out.data))
        return reject(BlkReject::kBadLength, VIRTIO_BLK_S_IOERR, out.status, "short");
      out.data_len = len;
      return {};
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
      bool discard = hdr->type == VIRTIO_BLK_T_DISCARD;
      out.op = discard ? BlkOp::kDiscard : BlkOp::kWriteZeroes;
      if (discard ? !limits.discard : !limits.write_zeroes)
        return reject(BlkReject::kUnsupported, VIRTIO_BLK_S_UNSUPP, out.status, "discard/write-zeroes not negotiated");
      if (limits.read_only)
        return reject(BlkReject::kReadOnly, VIRTIO_BLK_S_IOERR, out.status, "write to a read-only disk");
      return parse_segments(reader, limits, discard, out.status, out);
    }
    default:
      // GET_LIFETIME, SECURE_ERASE, zoned and unknown types.
      return reject(BlkReject::kUnsupported, VIRTIO_BLK_S_UNSUPP, out.status, "unsupported request type");
  }
}

}  // namespace microvm
