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
  if (!active()) return {};
  if (vhost_) return fail(ENOTSUP, "virtio-net: a device served by vhost-net cannot be snapshotted");
  if (rx_stash_.empty() || !rx_stash_gapped_ || needs_reset()) return {};
  // A chain was used after the stash began, so the stash cannot simply go back to the ring
  // (rewinding would offer that used chain again). Return the stashed chains empty instead:
  // the driver drops a zero-length receive and refills the buffer.
  std::vector<Queue::UsedElement> empty;
  for (const auto& chain : rx_stash_) empty.push_back({chain.head(), 0});
  rx_stash_.clear();
  rx_stash_bytes_ = 0;
  rx_stash_gapped_ = false;
  if (complete(kRxQueue, empty)) notify(kRxQueue);
  return {};
}

Result<std::vector<std::byte>> NetDevice::save_state() {
  if (active() && vhost_) return fail(ENOTSUP, "virtio-net: a device served by vhost-net cannot be snapshotted");
  StateWriter w;
  w.header(kNetTag, kNetVersion);
  write_core_state(w);
  w.bytes(std::as_bytes(std::span(options_.mac)));
  w.u16(options_.mtu);
  size_t frame = 0;
  if (active() && !needs_reset()) {
    if (rx_stash_gapped_ && !rx_stash_.empty())
      return fail(EBUSY, "virtio-net: RX chains held out of order; quiesce before saving");
    frame = rx_pending_;
  }
  w.bytes(std::span(rx_buf_).first(frame));
  TRY(write_queue_positions(w));  // the stashed RX chains go back to the ring
  return w.take();
}

Result<void> NetDevice::load_state(std::span<const std::byte> blob) {
  if (active()) return fail(EBUSY, "virtio-net: state loaded into an active device");
  StateReader r(blob, "virtio-net state");
  TRY(r.header(kNetTag, kNetVersion));
  auto core = TRY(read_core_state(r));
  auto mac = TRY(r.bytes(options_.mac.size()));
  uint16_t mtu = TRY(r.u16());
  // The guest keeps using the address and MTU it read at probe time.
  if (mac.size() != options_.mac.size() ||
      !std::equal(mac.begin(), mac.end(), std::as_bytes(std::span(options_.mac)).begin()))
    return fail(EINVAL, "virtio-net: the MAC address differs from the one in the snapshot");
  if (mtu != options_.mtu) return fail(EINVAL, "virtio-net: the MTU differs from the one in the snapshot");
  auto frame = TRY(r.bytes(rx_buf_.size()));
  if (!frame.empty() && frame.size() < sizeof(VirtioNetHdr) + kMinEthernetFrame)
    return r.invalid("pending RX frame is shorter than a header and an Ethernet frame");
  auto queues = TRY(read_queue_positions(r));
  TRY(r.expect_end());
  resume_from(core, std::move(queues));
  restored_rx_frame_.assign(core.active ? frame.begin() : frame.end(), frame.end());
  return {};
}

}  // namespace microvm
