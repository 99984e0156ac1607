// VsockDevice's snapshot half: save, load and the transport reset once DeviceCore has resumed
// the rings after a restore.
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
  write_core_state(w);
  w.u64(options_.guest_cid);
  TRY(write_queue_positions(w));  // the held RX chain goes back to the ring (chains_given_back)
  return w.take();
}

Result<void> VsockDevice::load_state(std::span<const std::byte> blob) {
  if (active()) return fail(EBUSY, "virtio-vsock: state loaded into an active device");
  StateReader r(blob, "virtio-vsock state");
  TRY(r.header(kVsockTag, kVsockVersion));
  auto core = TRY(read_core_state(r));
  uint64_t cid = TRY(r.u64());
  // The guest's sockets are bound to the CID it read at probe time.
  if (cid != options_.guest_cid)
    return fail(EINVAL, "virtio-vsock: the guest CID is " + std::to_string(options_.guest_cid) + ", the snapshot's " +
                            std::to_string(cid));
  auto queues = TRY(read_queue_positions(r));
  TRY(r.expect_end());
  resume_from(core, std::move(queues));  // the next activate() resumes the rings, then on_resumed()
  return {};
}

void VsockDevice::on_resumed() {
  // Every connection the guest had ended with the process that served it: the guest must drop
  // them (and re-read guest_cid). Delivered now if the driver left an event buffer, as Linux
  // keeps one posted; else when it adds one.
  event_pending_ = true;
  deliver_events();
}

}  // namespace microvm
