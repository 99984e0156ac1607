// NetDevice's snapshot half: quiesce, save and load.
#include <string>

#include "virtio/net/device.h"
#include "virtio/net/net_spec.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

constexpr uint32_t kNetTag = state_tag("VNET");
constexpr uint16_t kNetVersion = 1;

}  // namespace

Result<void> NetDevice::quiesce() {
  if (!active_) return {};
  if (active_->vhost) return fail(ENOTSUP, "virtio-net: a device served by vhost-net cannot be snapshotted");
  Active& a = *active_;
  if (a.rx_stash.empty() || !a.rx_stash_gapped || needs_reset()) return {};
  // A chain was used after the stash began, so the stash cannot simply go back to the ring
  // (rewinding would offer that used chain again). Return the stashed chains empty instead:
  // the driver drops a zero-length receive and refills the buffer.
  std::vector<Queue::UsedElement> empty;
  for (const auto& chain : a.rx_stash) empty.push_back({chain.head(), 0});
  a.rx_stash.clear();
  a.rx_stash_bytes = 0;
  a.rx_stash_gapped = false;
  if (auto r = a.rx.add_used_many(*a.memory, empty); !r) {
    enter_needs_reset(r.error());
    return {};
  }
  notify(a.rx, kRxQueue);
  return {};
}

Result<std::vector<std::byte>> NetDevice::save_state() {
  if (active_ && active_->vhost) return fail(ENOTSUP, "virtio-net: a device served by vhost-net cannot be snapshotted");
  StateWriter w;
  w.header(kNetTag, kNetVersion);
  w.boolean(active_.has_value());
  w.u64(acked_features_);
  bool broken = needs_reset();
  w.boolean(broken);
  w.bytes(std::as_bytes(std::span(options_.mac)));
  w.u16(options_.mtu);
  std::vector<std::optional<Queue::Position>> positions(2);
  size_t frame = 0;
  if (active_ && !broken) {
    if (active_->rx_stash_gapped && !active_->rx_stash.empty())
      return fail(EBUSY, "virtio-net: RX chains held out of order; quiesce before saving");
    // The stashed RX chains are the last ones popped: they go back to the ring.
    positions[kRxQueue] = TRY(active_->rx.position(static_cast<uint16_t>(active_->rx_stash.size())));
    positions[kTxQueue] = TRY(active_->tx.position());
    frame = rx_pending_;
  }
  w.bytes(std::span(rx_buf_).first(frame));
  SavedQueues(std::move(positions)).write(w);
  return w.take();
}

Result<void> NetDevice::load_state(std::span<const std::byte> blob) {
  if (active_) return fail(EBUSY, "virtio-net: state loaded into an active device");
  StateReader r(blob, "virtio-net state");
  TRY(r.header(kNetTag, kNetVersion));
  bool active = TRY(r.boolean());
  uint64_t acked = TRY(r.u64());
  if (acked & ~features()) return r.invalid("acked features the device does not offer");
  bool broken = TRY(r.boolean());
  auto mac = TRY(r.bytes(options_.mac.size()));
  uint16_t mtu = TRY(r.u16());
  // The guest keeps using the address and MTU it read at probe time.
  if (mac.size() != options_.mac.size() || !std::equal(mac.begin(), mac.end(), std::as_bytes(std::span(options_.mac)).begin()))
    return fail(EINVAL, "virtio-net: the MAC address differs from the one in the snapshot");
  if (mtu != options_.mtu) return fail(EINVAL, "virtio-net: the MTU differs from the one in the snapshot");
  auto frame = TRY(r.bytes(rx_buf_.size()));
  if (!frame.empty() && frame.size() < sizeof(VirtioNetHdr) + kMinEthernetFrame)
    return r.invalid("pending RX frame is shorter than a header and an Ethernet frame");
  auto queues = TRY(SavedQueues::read(r, 2));
  TRY(r.expect_end());
  acked_features_ = acked;
  resume_.reset();
  if (active) resume_ = Resume{.needs_reset = broken, .queues = std::move(queues), .rx_frame = {frame.begin(), frame.end()}};
  return {};
}

}  // namespace microvm
