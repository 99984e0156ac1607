#pragma once
// The guest side of virtio-vsock for tests, fuzzers and benches: three driver queues in fake
// guest memory, RX buffers posted from a fixed pool and re-posted as packets are collected,
// TX packets written into reusable slots (the device completes TX chains synchronously).
#include <cstdint>
#include <deque>
#include <map>
#include <span>
#include <vector>

#include "base/event_fd.h"
#include "memory/guest_memory.h"
#include "tests/testing/driver_queue.h"
#include "virtio/virtio_device.h"
#include "virtio/vsock/vsock_spec.h"

namespace microvm::testing {

struct VsockPacket {
  VsockHeader hdr{};
  std::vector<std::byte> payload;
  uint32_t used_len = 0;
};

class VsockDriver {
 public:
  // Lays the queues out from `base`; RX buffers are `rx_buf_size` bytes (header included).
  VsockDriver(const GuestMemory& mem, GuestAddress base, uint64_t limit, uint16_t queue_size = 64,
              uint32_t rx_buf_size = 4096 + sizeof(VsockHeader));

  std::vector<QueueConfig> configs() const;
  // Posts up to `n` RX buffers (bounded by free descriptors) without kicking.
  void post_rx(unsigned n);
  // Writes a packet (header + payload, split over two descriptors when `split`), kicks TX.
  void send(const VsockHeader& hdr, std::span<const std::byte> payload = {}, bool split = false);
  void kick_rx() { rx_kick.signal(); }
  // Collects used RX buffers into packets and, with `repost`, posts them again (kicking RX).
  std::vector<VsockPacket> collect(bool repost = true);
  // Posts an event buffer; returns used event ids collected so far.
  void post_event();
  std::vector<uint32_t> collect_events();
  unsigned rx_posted() const { return static_cast<unsigned>(rx_addr_.size()); }

  VsockHeader header(uint64_t guest_cid, uint32_t src_port, uint32_t dst_port, uint16_t op, uint32_t len = 0,
                     uint32_t buf_alloc = 1 << 20, uint32_t fwd_cnt = 0) const;

  EventFd rx_kick = *EventFd::create();
  EventFd tx_kick = *EventFd::create();
  EventFd ev_kick = *EventFd::create();

 private:
  const GuestMemory& mem_;
  DriverQueue rxq_, txq_, evq_;
  uint32_t rx_buf_size_;
  std::vector<GuestAddress> rx_pool_;         // free RX buffers
  std::map<uint16_t, GuestAddress> rx_addr_;  // posted: head -> buffer
  std::vector<GuestAddress> ev_pool_;
  std::map<uint16_t, GuestAddress> ev_addr_;
  GuestAddress tx_area_;
  unsigned tx_slot_ = 0;
  static constexpr uint64_t kTxSlot = (64 << 10) + 256;
  static constexpr unsigned kTxSlots = 64;  // packets in flight between two loop runs
};

}  // namespace microvm::testing
