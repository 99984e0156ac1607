#include "tests/testing/vsock_driver.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "tests/testing/fake_memory.h"

namespace microvm::testing {
namespace {

GuestAddress after(const DriverQueue& q) { return GuestAddress((q.end().raw() + 4095) & ~uint64_t{4095}); }

}  // namespace

VsockDriver::VsockDriver(const GuestMemory& mem, GuestAddress base, uint64_t limit, uint16_t queue_size,
                         uint32_t rx_buf_size)
    : mem_(mem),
      rxq_(mem, queue_size, base),
      txq_(mem, queue_size, after(rxq_)),
      evq_(mem, 8, after(txq_)),
      rx_buf_size_(rx_buf_size) {
  GuestAllocator alloc(after(evq_), GuestAddress(limit));
  for (unsigned i = 0; i < queue_size; ++i) rx_pool_.push_back(alloc.alloc(rx_buf_size_));
  for (unsigned i = 0; i < 8; ++i) ev_pool_.push_back(alloc.alloc(16));
  tx_area_ = alloc.alloc(kTxSlot * kTxSlots);
}

std::vector<QueueConfig> VsockDriver::configs() const {
  return {rxq_.config(rx_kick.fd()), txq_.config(tx_kick.fd()), evq_.config(ev_kick.fd())};
}

void VsockDriver::post_rx(unsigned n) {
  for (unsigned i = 0; i < n && !rx_pool_.empty() && rxq_.free_descriptors() > 0; ++i) {
    GuestAddress a = rx_pool_.back();
    rx_pool_.pop_back();
    DriverBuffer b{a, rx_buf_size_, true};
    rx_addr_[rxq_.add_chain(std::span(&b, 1))] = a;
  }
}

void VsockDriver::send(const VsockHeader& hdr, std::span<const std::byte> payload, bool split) {
  if (payload.size() + sizeof hdr > kTxSlot) {
    std::fprintf(stderr, "VsockDriver::send: payload too large for a TX slot\n");
    std::abort();
  }
  GuestAddress a = tx_area_ + kTxSlot * (tx_slot_++ % kTxSlots);
  auto s = *mem_.translate(a, sizeof hdr + payload.size());
  std::memcpy(s.data(), &hdr, sizeof hdr);
  if (!payload.empty()) std::memcpy(s.data() + sizeof hdr, payload.data(), payload.size());
  uint32_t total = static_cast<uint32_t>(sizeof hdr + payload.size());
  if (split && !payload.empty()) {
    DriverBuffer b[2] = {{a, sizeof hdr, false}, {a + sizeof hdr, static_cast<uint32_t>(payload.size()), false}};
    txq_.add_chain(b);
  } else {
    DriverBuffer b{a, total, false};
    txq_.add_chain(std::span(&b, 1));
  }
  // Reclaim completed TX descriptors: the device completes them before we send again.
  while (txq_.next_used()) {
  }
  tx_kick.signal();
}

std::vector<VsockPacket> VsockDriver::collect(bool repost) {
  while (txq_.next_used()) {
  }
  std::vector<VsockPacket> out;
  unsigned reposted = 0;
  while (auto u = rxq_.next_used()) {
    auto it = rx_addr_.find(static_cast<uint16_t>(u->id));
    if (it == rx_addr_.end()) {
      std::fprintf(stderr, "VsockDriver: used id %u was not posted\n", u->id);
      std::abort();
    }
    GuestAddress a = it->second;
    rx_addr_.erase(it);
    VsockPacket p;
    p.used_len = u->len;
    auto s = *mem_.translate(a, rx_buf_size_);
    if (u->len >= sizeof(VsockHeader) && u->len <= rx_buf_size_) {
      std::memcpy(&p.hdr, s.data(), sizeof p.hdr);
      p.payload.assign(s.begin() + sizeof(VsockHeader), s.begin() + u->len);
    }
    out.push_back(std::move(p));
    rx_pool_.push_back(a);
    ++reposted;
  }
  if (reposted && repost) {
    post_rx(reposted);
    kick_rx();
  }
  return out;
}

void VsockDriver::post_event() {
  if (ev_pool_.empty()) return;
  GuestAddress a = ev_pool_.back();
  ev_pool_.pop_back();
  DriverBuffer b{a, 4, true};
  ev_addr_[evq_.add_chain(std::span(&b, 1))] = a;
  ev_kick.signal();
}

std::vector<uint32_t> VsockDriver::collect_events() {
  std::vector<uint32_t> ids;
  while (auto u = evq_.next_used()) {
    auto it = ev_addr_.find(static_cast<uint16_t>(u->id));
    if (it == ev_addr_.end()) continue;
    uint32_t id = 0xffffffff;
    if (u->len == 4) id = *mem_.read_obj<uint32_t>(it->second);
    ids.push_back(id);
    ev_pool_.push_back(it->second);
    ev_addr_.erase(it);
  }
  return ids;
}

VsockHeader VsockDriver::header(uint64_t guest_cid, uint32_t src_port, uint32_t dst_port, uint16_t op, uint32_t len,
                                uint32_t buf_alloc, uint32_t fwd_cnt) const {
  VsockHeader h{};
  h.src_cid = guest_cid;
  h.dst_cid = VMADDR_CID_HOST;
  h.src_port = src_port;
  h.dst_port = dst_port;
  h.len = len;
  h.type = VIRTIO_VSOCK_TYPE_STREAM;
  h.op = op;
  h.buf_alloc = buf_alloc;
  h.fwd_cnt = fwd_cnt;
  return h;
}

}  // namespace microvm::testing
