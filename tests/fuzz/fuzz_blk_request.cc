// Fuzzes the virtio-blk request parser on chains built from the input: the descriptors come
// from a small structured prefix (so the fuzzer quickly finds well-formed layouts), the bytes
// they point at from the rest.
//
// Input: byte 0 = descriptor count (1..16) and byte 1 = options (bit 0 indirect, bits 1-3
// read_only/discard/write_zeroes, bits 4-7 capacity choice); then per descriptor 6 bytes
// {u16 offset, u16 len, u8 flags, u8 next}; the rest is copied into the data area at 0x4000.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tests/fuzz/fuzz_common.h"
#include "virtio/blk/blk_spec.h"
#include "virtio/blk/request.h"
#include "virtio/queue.h"
#include "virtio/virtio_spec.h"

using namespace microvm;

namespace {
constexpr uint64_t kDesc = 0x0, kAvail = 0x1000, kUsed = 0x2000, kIndirect = 0x3000, kData = 0x4000;
constexpr uint16_t kQueueSize = 16;

template <class T>
void put(const GuestMemory& mem, uint64_t addr, const T& v) {
  if (!mem.write_obj(GuestAddress(addr), v)) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const GuestMemory& mem = fuzz::fuzz_memory();
  size_t n = data[0] % kQueueSize + 1;
  uint8_t opts = data[1];
  if (size < 2 + 6 * n) return 0;
  const uint8_t* descs = data + 2;
  fuzz::load(mem, kData, descs + 6 * n, size - 2 - 6 * n);

  // Descriptors: by default a linear chain 0 -> 1 -> ...; the fuzzer may set its own `next`
  // (flag bit 0 of byte 4 chooses) to build loops and jumps.
  bool indirect = opts & 1;
  uint64_t table = indirect ? kIndirect : kDesc;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* d = descs + 6 * i;
    uint16_t off, len;
    std::memcpy(&off, d, 2);
    std::memcpy(&len, d + 2, 2);
    uint8_t flags = d[4];
    VirtqDesc desc{kData + off, len, 0, 0};
    if (flags & 1) desc.flags |= VIRTQ_DESC_F_WRITE;
    if (flags & 2) desc.flags |= VIRTQ_DESC_F_INDIRECT;  // mostly invalid, on purpose
    if (i + 1 < n) {
      desc.flags |= VIRTQ_DESC_F_NEXT;
      desc.next = static_cast<uint16_t>((flags & 4) ? d[5] : i + 1);
    }
    put(mem, table + 16 * i, desc);
  }
  if (indirect) put(mem, kDesc, VirtqDesc{kIndirect, static_cast<uint32_t>(16 * n), VIRTQ_DESC_F_INDIRECT, 0});
  put(mem, kAvail + 4, uint16_t{0});  // ring[0] = head 0
  put(mem, kAvail + 2, uint16_t{1});  // idx = 1

  QueueConfig qc{kQueueSize, GuestAddress(kDesc), GuestAddress(kAvail), GuestAddress(kUsed), true, -1};
  auto q = Queue::create(qc, feature_bit(VIRTIO_F_INDIRECT_DESC));
  if (!q) __builtin_trap();
  auto popped = q->pop(mem);
  if (!popped || !*popped) __builtin_trap();  // the ring itself is always well-formed here
  const DescriptorChain& chain = **popped;
  if (!chain.valid()) return 0;

  static const uint64_t kCapacities[] = {0, 1, 8, 2048, 1ull << 30, UINT64_MAX / 512};
  BlkLimits limits;
  limits.capacity_sectors = kCapacities[(opts >> 4) % 6];
  limits.read_only = opts & 2;
  limits.discard = opts & 4;
  limits.write_zeroes = opts & 8;
  limits.max_discard_sectors = limits.max_write_zeroes_sectors = 1 << 21;
  limits.max_discard_seg = limits.max_write_zeroes_seg = 4;
  limits.max_data_segments = 8;

  BlkRequest req;
  auto parsed = parse_request(chain, limits, req);
  if (!parsed) {
    const BlkParseError& e = parsed.error();
    if ((e.status_ptr == nullptr) != (e.reason == BlkReject::kNoStatus)) __builtin_trap();
    if (e.status_ptr) *e.status_ptr = std::byte{e.status};  // must be guest RAM (ASan checks)
    return 0;
  }
  // Invariants of an accepted request.
  *req.status = std::byte{VIRTIO_BLK_S_OK};
  uint64_t total = 0;
  for (const iovec& v : req.data) {
    total += v.iov_len;
    if (v.iov_len) static_cast<volatile uint8_t*>(v.iov_base)[v.iov_len - 1] = 0;
  }
  if (total != req.data_len) __builtin_trap();
  uint64_t disk = limits.capacity_sectors * kSectorSize;
  switch (req.op) {
    case BlkOp::kRead:
    case BlkOp::kWrite:
      if (req.data_len == 0 || req.data_len % 512 || req.offset > disk || req.data_len > disk - req.offset)
        __builtin_trap();
      if (req.op == BlkOp::kWrite && limits.read_only) __builtin_trap();
      break;
    case BlkOp::kDiscard:
    case BlkOp::kWriteZeroes:
      if (limits.read_only || req.segments.empty() || req.segments.size() > 4) __builtin_trap();
      for (const BlkSegment& s : req.segments)
        if (s.len == 0 || s.offset > disk || s.len > disk - s.offset) __builtin_trap();
      break;
    case BlkOp::kGetId:
      if (req.data_len == 0 || req.data_len > VIRTIO_BLK_ID_BYTES) __builtin_trap();
      break;
    case BlkOp::kFlush:
      break;
  }
  return 0;
}
