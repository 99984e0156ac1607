// Fuzzes the split virtqueue: the input is guest memory holding a descriptor table and rings
// (and indirect tables and buffers wherever the input points). The device side pops and
// completes chains until the ring is empty or broken; nothing may crash, hang or touch host
// memory outside guest RAM.
//
// Input: byte 0 = queue size as log2 (mod 9: 1..256), byte 1 = options (bit 0 INDIRECT_DESC,
// bit 1 EVENT_IDX, bit 2 keep chains in flight instead of completing them at once, bit 3 ring
// placement from byte 2), byte 2 = ring placement; the rest is copied to guest address 0.
// Default rings: descriptors at 0x0, available ring at 0x1000, used ring at 0x2000. With bit 3
// the rings move (possibly overlapping each other, or running off the end of RAM).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tests/fuzz/fuzz_common.h"
#include "virtio/queue.h"
#include "virtio/virtio_spec.h"

using namespace microvm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const GuestMemory& mem = fuzz::fuzz_memory();
  uint16_t qsize = static_cast<uint16_t>(1u << (data[0] % 9));
  uint8_t opts = data[1];
  uint8_t place = data[2];
  fuzz::load(mem, 0, data + 3, size - 3);

  uint64_t features = 0;
  if (opts & 1) features |= feature_bit(VIRTIO_F_INDIRECT_DESC);
  if (opts & 2) features |= feature_bit(VIRTIO_F_EVENT_IDX);
  bool keep_in_flight = opts & 4;

  QueueConfig qc;
  qc.size = qsize;
  qc.desc = GuestAddress(0);
  qc.driver = GuestAddress(0x1000);
  qc.device = GuestAddress(0x2000);
  if (opts & 8) {
    // Overlaps, the region boundary at 64 KiB and the end of RAM at 68 KiB are all reachable.
    qc.desc = GuestAddress(static_cast<uint64_t>(place & 7) * 0x2000);
    qc.driver = GuestAddress(static_cast<uint64_t>((place >> 3) & 7) * 0x2002);
    qc.device = GuestAddress(static_cast<uint64_t>(place >> 6) * 0x5ffc + 0x1000);
  }
  qc.ready = true;
  auto q = Queue::create(qc, features);
  if (!q) __builtin_trap();  // sizes and alignments above are always valid
  if (!q->validate_rings(mem)) {
    if (!(opts & 8)) __builtin_trap();  // the default layout is in RAM
    return 0;                           // the device refuses to activate
  }

  std::vector<uint16_t> held;
  // Each pop consumes an avail entry, so 2 * size pops are more than a sane ring can offer.
  for (int i = 0; i < 2 * qsize + 2; ++i) {
    auto popped = q->pop(mem);
    if (!popped) break;  // ring unusable: the device would enter NEEDS_RESET
    if (!*popped) break;
    const DescriptorChain& chain = **popped;
    if (!chain.valid() && (!chain.readable().empty() || !chain.writable().empty())) __builtin_trap();
    fuzz::touch(chain);
    // Exercise the cursors the devices use.
    Reader r = chain.reader();
    uint8_t buf[64];
    while (r.remaining() >= sizeof buf)
      if (!r.read(std::as_writable_bytes(std::span(buf)))) __builtin_trap();
    Writer w = chain.writer();
    auto tail = w.split_last(1);
    std::vector<iovec> iov;
    if (!w.take_iovecs(w.remaining(), iov)) __builtin_trap();
    if (tail && tail->size() != 1) __builtin_trap();
    uint32_t len = static_cast<uint32_t>(chain.writable_bytes());
    if (keep_in_flight) {
      held.push_back(chain.head());
    } else if (!q->add_used(mem, chain.head(), len)) {
      __builtin_trap();  // a head we just popped is in flight
    }
    (void)q->needs_notification(mem);
  }
  for (uint16_t head : held) (void)q->add_used(mem, head, 0);
  if (q->in_flight() != 0 && !q->broken()) __builtin_trap();
  return 0;
}
