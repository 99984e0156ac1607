// Fuzzes virtio-blk end to end without KVM: the input is a little program that adds requests
// (valid and malformed) to two queues, kicks, completes backend operations in any order,
// injects backend failures and resets the device. Afterwards every request must have been
// completed exactly once (unless the device asked for a reset), with a valid status.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "base/event_fd.h"
#include "base/event_loop.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "tests/testing/memory_block_backend.h"
#include "virtio/blk/device.h"
#include "virtio/virtio_spec.h"

using namespace microvm;
using microvm::testing::DriverBuffer;
using microvm::testing::DriverQueue;
using microvm::testing::MemoryBlockBackend;

namespace {

constexpr uint16_t kQueues = 2;
constexpr uint16_t kQueueSize = 16;
constexpr uint64_t kDiskBytes = 64 << 10;

struct Input {
  const uint8_t* p;
  size_t n;
  bool empty() const { return n == 0; }
  uint8_t byte() {
    if (!n) return 0;
    --n;
    return *p++;
  }
};

struct Harness {
  const GuestMemory& mem;
  std::unique_ptr<EventLoop> loop = std::move(*EventLoop::create());
  testing::FakeInterrupt irq;
  MemoryBlockBackend* backend = nullptr;
  std::unique_ptr<BlkDevice> dev;
  std::vector<std::unique_ptr<DriverQueue>> dqs;
  std::vector<EventFd> kicks;
  testing::GuestAllocator alloc{GuestAddress(0x20000), GuestAddress(1 << 20)};
  // Outstanding requests per queue: head -> where the device writes the status (the last
  // device-writable byte), or nothing when the chain has no writable byte.
  std::map<uint16_t, std::optional<GuestAddress>> outstanding[kQueues];

  explicit Harness(const GuestMemory& m, bool read_only) : mem(m) {
    auto b = std::move(*MemoryBlockBackend::create(kDiskBytes));
    backend = b.get();
    backend->set_manual(true);
    BlkOptions o;
    o.num_queues = kQueues;
    o.queue_size = kQueueSize;
    o.read_only = read_only;
    o.serial = "fuzz";
    dev = std::move(*BlkDevice::create(std::move(b), o));
    for (uint16_t i = 0; i < kQueues; ++i) kicks.push_back(std::move(*EventFd::create()));
    activate();
  }
  void activate() {
    dqs.clear();
    std::vector<QueueConfig> qcs;
    for (uint16_t i = 0; i < kQueues; ++i) {
      dqs.push_back(std::make_unique<DriverQueue>(mem, kQueueSize, GuestAddress(0x1000 + 0x2000 * i)));
      qcs.push_back(dqs.back()->config(kicks[i].fd()));
      outstanding[i].clear();
    }
    uint64_t f = dev->features();
    dev->ack_features(f);
    if (!dev->activate(ActivationContext{mem, irq, *loop, f, qcs})) __builtin_trap();
  }
  void run() {
    for (int i = 0; i < 50; ++i) {
      auto n = loop->run_once(0);
      if (!n) __builtin_trap();
      if (*n == 0) break;
    }
    for (uint16_t q = 0; q < kQueues; ++q) reap_used(q);
  }
  void reap_used(uint16_t q) {
    while (auto u = dqs[q]->next_used()) {
      auto it = outstanding[q].find(static_cast<uint16_t>(u->id));
      if (it == outstanding[q].end()) __builtin_trap();  // completed twice, or never offered
      if (u->len > 0) {
        if (!it->second) __builtin_trap();  // a length without a status byte
        uint8_t status = *mem.read_obj<uint8_t>(*it->second);
        if (status > VIRTIO_BLK_S_UNSUPP) __builtin_trap();
      }
      outstanding[q].erase(it);
    }
  }
  void add_request(Input& in) {
    uint16_t q = in.byte() % kQueues;
    if (dqs[q]->free_descriptors() < 4) return;
    static const uint32_t kTypes[] = {VIRTIO_BLK_T_IN,      VIRTIO_BLK_T_OUT,          VIRTIO_BLK_T_FLUSH,
                                      VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_T_GET_ID,
                                      VIRTIO_BLK_T_OUT,     VIRTIO_BLK_T_IN,           77};
    uint8_t t = in.byte();
    uint32_t type = kTypes[t % 9];
    uint64_t sector = in.byte() % 140;  // some past the 128-sector disk
    uint32_t len = (in.byte() % 5) * 512 + ((t & 0x80) ? 3 : 0);
    GuestAddress hdr = alloc.alloc(16);
    if (!mem.write_obj(hdr, VirtioBlkOuthdr{type, 0, sector})) __builtin_trap();
    GuestAddress status = alloc.alloc(1);
    std::vector<DriverBuffer> bufs{{hdr, 16, false}};
    if (type == VIRTIO_BLK_T_DISCARD || type == VIRTIO_BLK_T_WRITE_ZEROES) {
      uint8_t nseg = in.byte() % 3 + 1;
      GuestAddress segs = alloc.alloc(16 * nseg);
      for (uint8_t i = 0; i < nseg; ++i) {
        VirtioBlkDiscardWriteZeroes s{in.byte() % 130u, in.byte() % 9u, in.byte() % 3u};
        if (!mem.write_obj(segs + 16 * i, s)) __builtin_trap();
      }
      bufs.push_back({segs, 16u * nseg, false});
    } else if (len) {
      bufs.push_back({alloc.alloc(len), len, type != VIRTIO_BLK_T_OUT});
    }
    if (!(t & 0x40)) bufs.push_back({status, 1, true});  // sometimes no status byte at all
    std::optional<GuestAddress> status_at;
    if (bufs.back().writable) status_at = bufs.back().addr + (bufs.back().len - 1);
    uint16_t head = dqs[q]->add_chain(bufs);
    outstanding[q][head] = status_at;
  }
  void add_bad_chain(Input& in) {
    uint16_t q = in.byte() % kQueues;
    if (dqs[q]->free_descriptors() < 1) return;
    // A self-loop in a descriptor the driver helper considers its own.
    GuestAddress b = alloc.alloc(16);
    DriverBuffer buf{b, 16, false};
    uint16_t head = dqs[q]->add_chain(std::span(&buf, 1), /*publish=*/false);
    dqs[q]->write_desc(head, VirtqDesc{b.raw(), 16, VIRTQ_DESC_F_NEXT, head});
    dqs[q]->set_avail_idx(dqs[q]->avail_idx());
    outstanding[q][head] = std::nullopt;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(1 << 20);
  if (size < 1) return 0;
  // Same starting memory for every input, so a crash reproduces.
  std::memset(mem->regions()[0].host, 0, mem->regions()[0].size);
  Input in{data, size};
  Harness h(*mem, in.byte() & 1);
  for (int steps = 0; !in.empty() && steps < 200; ++steps) {
    switch (in.byte() % 8) {
      case 0:
      case 1:
        h.add_request(in);
        break;
      case 2:
        h.kicks[in.byte() % kQueues].signal();
        h.run();
        break;
      case 3:
        h.backend->complete_next();
        h.run();
        break;
      case 4: {
        size_t held = h.backend->held();
        if (held) {
          // Complete an arbitrary held operation: out-of-order completions.
          const auto& sub = h.backend->submitted();
          h.backend->complete_tag(sub[in.byte() % sub.size()].tag);
        }
        h.run();
        break;
      }
      case 5:
        h.backend->fail_next(static_cast<MemoryBlockBackend::OpKind>(in.byte() % 5), EIO);
        break;
      case 6:
        if (in.byte() % 4 == 0) {
          h.dev->reset();
          if (h.dev->in_flight() != 0 || h.backend->held() != 0) __builtin_trap();
          h.activate();
        } else {
          h.add_bad_chain(in);
        }
        break;
      case 7:
        if (!h.dqs.empty()) h.dqs[in.byte() % kQueues]->set_used_event(in.byte());
        break;
    }
  }
  // Drain: kick everything, complete everything, until quiet.
  for (int round = 0; round < 20; ++round) {
    for (auto& k : h.kicks) k.signal();
    h.run();
    h.backend->complete_all();
    h.run();
  }
  if (!h.dev->needs_reset()) {
    if (h.dev->in_flight() != 0) __builtin_trap();
    for (auto& o : h.outstanding)
      if (!o.empty()) __builtin_trap();  // a request never completed
  }
  h.dev->reset();
  return 0;
}
