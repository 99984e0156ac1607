#pragma once
// A host-side virtio-blk driver for tests that put a real backend (raw or qcow2, io_uring or
// sync, possibly behind a FaultyEngine) under the device: fake guest memory, one driver queue,
// the event loop, synchronous request helpers that return the status byte the device wrote.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "base/event_fd.h"
#include "base/event_loop.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "virtio/blk/device.h"

namespace microvm::testing {

class BlkTestDriver {
 public:
  static constexpr uint8_t kNoStatus = 0xee;  // what the status byte holds until the device writes it

  // Creates the device over `backend` and activates it (all offered features but EVENT_IDX,
  // so every completion batch interrupts).
  void start(std::unique_ptr<BlockBackend> backend, BlkOptions options = {}) {
    auto d = BlkDevice::create(std::move(backend), options);
    ASSERT_TRUE(d.has_value()) << d.error().what;
    dev = std::move(*d);
    activate();
  }
  // What a driver does after a reset: fresh rings, features, DRIVER_OK.
  void activate() {
    dq = std::make_unique<DriverQueue>(*mem, 64, GuestAddress(0x1000));
    posted_ = 0;
    uint64_t f = dev->features() & ~feature_bit(VIRTIO_F_EVENT_IDX);
    dev->ack_features(f);
    auto r = dev->activate(ActivationContext{*mem, irq, *loop, f, {dq->config(kick.fd())}});
    ASSERT_TRUE(r.has_value()) << r.error().what;
  }
  void reset() { dev->reset(); }

  GuestAddress buffer(uint32_t len, uint8_t fill = 0) {
    GuestAddress a = alloc.alloc(len, 512);
    std::memset(mem->translate(a, len)->data(), fill, len);
    return a;
  }
  std::span<std::byte> bytes(GuestAddress a, uint32_t len) { return *mem->translate(a, len); }

  // Queues a request and kicks; returns the status byte's address.
  GuestAddress post(uint32_t type, uint64_t sector, GuestAddress data, uint32_t len, bool writable) {
    GuestAddress hdr = alloc.alloc(16), status = alloc.alloc(1);
    EXPECT_TRUE(mem->write_obj(hdr, VirtioBlkOuthdr{type, 0, sector}).has_value());
    EXPECT_TRUE(mem->write_obj(status, kNoStatus).has_value());
    std::vector<DriverBuffer> bufs{{hdr, 16, false}};
    if (len) bufs.push_back({data, len, writable});
    bufs.push_back({status, 1, true});
    dq->add_chain(bufs);
    kick.signal();
    ++posted_;
    return status;
  }
  // Runs the loop until every posted request is used; returns the status of `status`.
  uint8_t wait(GuestAddress status) {
    for (int i = 0; i < 1000 && dq->used_idx() != posted_; ++i) EXPECT_TRUE(loop->run_once(10).has_value());
    EXPECT_EQ(dq->used_idx(), posted_) << "the device did not complete every request";
    while (dq->next_used()) {
    }
    return *mem->read_obj<uint8_t>(status);
  }

  uint8_t read(uint64_t sector, GuestAddress data, uint32_t len) {
    return wait(post(VIRTIO_BLK_T_IN, sector, data, len, true));
  }
  uint8_t write(uint64_t sector, GuestAddress data, uint32_t len) {
    return wait(post(VIRTIO_BLK_T_OUT, sector, data, len, false));
  }
  uint8_t flush() { return wait(post(VIRTIO_BLK_T_FLUSH, 0, GuestAddress(0), 0, false)); }
  // One discard / write-zeroes segment.
  uint8_t segment(uint32_t type, uint64_t sector, uint32_t sectors) {
    GuestAddress seg = alloc.alloc(16);
    EXPECT_TRUE(mem->write_obj(seg, VirtioBlkDiscardWriteZeroes{sector, sectors, 0}).has_value());
    return wait(post(type, 0, seg, 16, false));
  }

  std::unique_ptr<GuestMemory> mem = make_fake_memory(16 << 20);
  GuestAllocator alloc{GuestAddress(0x100000), GuestAddress(16 << 20)};
  FakeInterrupt irq;
  std::unique_ptr<EventLoop> loop = std::move(*EventLoop::create());
  EventFd kick = std::move(*EventFd::create());
  std::unique_ptr<DriverQueue> dq;
  std::unique_ptr<BlkDevice> dev;

 private:
  uint16_t posted_ = 0;
};

}  // namespace microvm::testing
