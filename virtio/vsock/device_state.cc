// VsockDevice's snapshot half: save, load and the transport reset at the activation that
// follows a restore.
#include <string>

#include "virtio/virtio_spec.h"
#include "virtio/vsock/device.h"

namespace microvm {
namespace {

constexpr uint32_t kVsockTag = state_tag("VVSK");
constexpr uint16_t kVsockVersion = 1;

}  // namespace

Result<std::vector<std::byte>> VsockDevice::save_state() {
  StateWriter w;
  w.header(kVsockTag, kVsockVersion);
  w.boolean(active());
  w.u64(acked_features());
  bool broken = needs_reset();
  w.boolean(broken);
  w.u64(options_.guest_cid);
  std::vector<std::optional<Queue::Position>> positions(num_queues());
  if (active() && !broken) {
    // TX and event chains complete inside their handlers; the RX chain held for the next
    // packet is the last one popped from its queue and goes back to the ring.
    if (Queue* q = queue(kRxQueue)) positions[kRxQueue] = TRY(q->position(rx_chain_ ? 1 : 0));
    if (Queue* q = queue(kTxQueue)) positions[kTxQueue] = TRY(q->position());
    if (Queue* q = queue(kEventQueue)) positions[kEventQueue] = TRY(q->position());
  }
  SavedQueues(std::move(positions)).write(w);
  return w.take();
}

Result<void> VsockDevice::load_state(std::span<const std::byte> blob) {
  if (active()) return fail(EBUSY, "virtio-vsock: state loaded into an active device");
  StateReader r(blob, "virtio-vsock state");
  TRY(r.header(kVsockTag, kVsockVersion));
  bool active = TRY(r.boolean());
  uint64_t acked = TRY(r.u64());
  if (acked & ~features()) return r.invalid("acked features the device does not offer");
  bool broken = TRY(r.boolean());
  uint64_t cid = TRY(r.u64());
  // The guest's sockets are bound to the CID it read at probe time.
  if (cid != options_.guest_cid)
    return fail(EINVAL, "virtio-vsock: the guest CID is " + std::to_string(options_.guest_cid) + ", the snapshot's " +
                            std::to_string(cid));
  auto queues = TRY(SavedQueues::read(r, num_queues()));
  TRY(r.expect_end());
  ack_features(acked);
  resume_.reset();
  if (active) resume_ = Resume{.needs_reset = broken, .queues = std::move(queues)};
  return {};
}

Result<void> VsockDevice::apply_resume() {
  if (!resume_) return {};
  Resume resume = std::move(*resume_);
  resume_.reset();
  if (resume.needs_reset) {
    enter_needs_reset(Error(EIO, "the saved device needed a reset"));
    return {};
  }
  for (uint16_t i = 0; i < num_queues(); ++i) {
    if (Queue* q = queue(i))
      TRY(resume.queues.apply(i, *q, memory()));
    else
      TRY(resume.queues.expect_unused(i));
  }
  // Every connection the guest had ended with the process that served it: the guest must drop
  // them (and re-read guest_cid). Delivered now if the driver left an event buffer, as Linux
  // keeps one posted; else when it adds one.
  event_pending_ = true;
  deliver_events();
  return {};
}

}  // namespace microvm
