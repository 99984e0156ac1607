// MmioTransport's snapshot/restore half.
#include "virtio/transport/mmio_transport.h"
#include "virtio/transport/transport_state.h"

namespace microvm {
namespace {

constexpr uint32_t kMmioTag = state_tag("VMMI");
constexpr uint16_t kMmioVersion = 1;
constexpr uint32_t kInterruptBits = 3;  // used buffer | configuration change (§4.2.2)

}  // namespace

Result<std::vector<std::byte>> MmioTransport::save_state(LoopAccess access) {
  std::lock_guard lock(mu_);
  StateWriter w;
  w.header(kMmioTag, kMmioVersion);
  core_->save(w);
  w.u32(interrupt_status_.load());
  auto device = TRY(core_->save_device(access));
  w.bytes(device);
  return w.take();
}

Result<void> MmioTransport::load_state(std::span<const std::byte> blob, LoopAccess access) {
  std::lock_guard lock(mu_);
  StateReader r(blob, "virtio-mmio state");
  TRY(r.header(kMmioTag, kMmioVersion));
  TRY(core_->load(r));
  uint32_t isr = TRY(r.u32());
  if (isr & ~kInterruptBits) return r.invalid("interrupt status has undefined bits set");
  auto device = TRY(r.bytes(kMaxDeviceStateBytes));
  TRY(r.expect_end());
  interrupt_status_.store(isr);
  TRY(core_->load_device(device, access));
  return core_->resume(*this, access);
}

}  // namespace microvm
