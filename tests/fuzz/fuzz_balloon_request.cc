// Fuzzes the virtio-balloon parsers (PFN arrays for inflate/deflate, the statistics buffer)
// and the virtio-pmem request parser on chains built from the input, as fuzz_blk_request does.
//
// Input: byte 0 = descriptor count (1..16), byte 1 = options (bits 0-1 parser: PFNs,
// stats or pmem; bit 2 indirect; bits 3-7 the per-chain limit); then per descriptor 6 bytes
// {u16 offset, u16 len, u8 flags, u8 next}; the rest is copied into the data area at 0x4000.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tests/fuzz/fuzz_common.h"
#include "virtio/balloon/request.h"
#include "virtio/pmem/request.h"
#include "virtio/queue.h"
#include "virtio/virtio_spec.h"

using namespace microvm;

namespace {
constexpr uint64_t kDesc = 0x0, kAvail = 0x1000, kIndirect = 0x3000, kData = 0x4000;
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
  bool indirect = opts & 4;
  uint64_t table = indirect ? kIndirect : kDesc;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* d = descs + 6 * i;
    uint16_t off, len;
    std::memcpy(&off, d, 2);
    std::memcpy(&len, d + 2, 2);
    VirtqDesc desc{kData + off, len, 0, 0};
    if (d[4] & 1) desc.flags |= VIRTQ_DESC_F_WRITE;
    if (i + 1 < n) {
      desc.flags |= VIRTQ_DESC_F_NEXT;
      desc.next = static_cast<uint16_t>((d[4] & 4) ? d[5] : i + 1);
    }
    put(mem, table + 16 * i, desc);
  }
  if (indirect) put(mem, kDesc, VirtqDesc{kIndirect, static_cast<uint32_t>(16 * n), VIRTQ_DESC_F_INDIRECT, 0});
  put(mem, kAvail + 4, uint16_t{0});
  put(mem, kAvail + 2, uint16_t{1});

  QueueConfig qc{kQueueSize, GuestAddress(kDesc), GuestAddress(kAvail), GuestAddress(0x2000), true, -1};
  auto q = Queue::create(qc, feature_bit(VIRTIO_F_INDIRECT_DESC));
  if (!q) __builtin_trap();
  auto popped = q->pop(mem);
  if (!popped || !*popped) __builtin_trap();
  const DescriptorChain& chain = **popped;
  if (!chain.valid()) return 0;
  uint32_t limit = (opts >> 3) + 1;  // 1..32

  switch (opts & 3) {
    case 0:
    case 3: {
      auto r = parse_pfn_chain(chain, limit);
      if (!r) {
        if (r.error() == BalloonReject::kWritable && chain.writable_bytes() == 0) __builtin_trap();
        return 0;
      }
      // Accepted: whole pages, as many as the driver sent, within the limit, page-aligned.
      uint64_t pages = 0;
      for (const BalloonRange& br : *r) {
        if (br.len == 0 || br.len % 4096 || br.gpa % 4096) __builtin_trap();
        pages += br.len / 4096;
      }
      if (pages * 4 != chain.readable_bytes() || pages > limit || chain.writable_bytes()) __builtin_trap();
      break;
    }
    case 1: {
      auto s = parse_stats_chain(chain, limit);
      if (!s) return 0;
      if (chain.readable_bytes() % 10 || chain.readable_bytes() / 10 > limit) __builtin_trap();
      break;
    }
    case 2: {
      auto r = parse_pmem_request(chain);
      std::byte* status = r ? r->status : r.error().status;
      if (r && chain.readable_bytes() < 4) __builtin_trap();
      if (status) {
        // Must be 4 writable bytes of guest RAM (ASan checks).
        uint32_t v = 1;
        std::memcpy(status, &v, sizeof v);
      }
      break;
    }
  }
  return 0;
}
