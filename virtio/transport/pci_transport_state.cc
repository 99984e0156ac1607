// PciTransport's snapshot/restore half.
#include <array>
#include <string>

#include "virtio/transport/pci_transport.h"
#include "virtio/transport/transport_state.h"

namespace microvm {
namespace {

constexpr uint32_t kPciTag = state_tag("VPCI");
constexpr uint16_t kPciVersion = 1;
constexpr uint8_t kIsrBits = 3;  // queue interrupt | configuration change (§4.1.4.5)
constexpr uint16_t kMsixControlEnable = 0x8000;
constexpr uint16_t kMsixControlFunctionMask = 0x4000;

}  // namespace

Result<std::vector<std::byte>> PciTransport::save_state(LoopAccess access) {
  std::lock_guard lock(mu_);
  StateWriter w;
  w.header(kPciTag, kPciVersion);
  core_->save(w);
  w.u8(isr_.load());
  w.u16(config_vector_.load());
  w.u16(core_->num_queues());
  for (uint16_t i = 0; i < core_->num_queues(); ++i) w.u16(queue_vectors_[i].load());
  std::array<std::byte, pci::kLegacyConfigSize> cfg{};
  for (uint16_t off = 0; off < cfg.size(); ++off) cfg[off] = std::byte{config_.get_u8(off)};
  w.bytes(cfg);
  msix_.save(w);
  auto device = TRY(core_->save_device(access));
  w.bytes(device);
  return w.take();
}

Result<void> PciTransport::load_state(std::span<const std::byte> blob, LoopAccess access) {
  std::lock_guard lock(mu_);
  StateReader r(blob, "virtio-pci state");
  TRY(r.header(kPciTag, kPciVersion));
  TRY(core_->load(r));
  uint8_t isr = TRY(r.u8());
  if (isr & ~kIsrBits) return r.invalid("ISR status has undefined bits set");
  // §4.1.4.3: a vector is NO_VECTOR or one the table has (assign_vector() kept it so).
  auto check_vector = [&](uint16_t v) -> Result<uint16_t> {
    if (v != VIRTIO_MSI_NO_VECTOR && v >= msix_.size())
      return r.invalid("MSI-X vector " + std::to_string(v) + " is out of range (table has " +
                       std::to_string(msix_.size()) + ")");
    return v;
  };
  uint16_t config_vector = TRY(check_vector(TRY(r.u16())));
  uint16_t nq = TRY(r.u16());
  if (nq != core_->num_queues())
    return r.invalid("saved " + std::to_string(nq) + " queue vectors, the device has " +
                     std::to_string(core_->num_queues()) + " queues");
  std::vector<uint16_t> vectors(nq);
  for (auto& v : vectors) v = TRY(check_vector(TRY(r.u16())));
  auto cfg = TRY(r.bytes(pci::kLegacyConfigSize));
  if (cfg.size() != pci::kLegacyConfigSize) return r.invalid("config space is not 256 bytes");
  TRY(msix_.load(r));
  auto device = TRY(r.bytes(kMaxDeviceStateBytes));
  TRY(r.expect_end());

  // Config space: replayed dword by dword through the write masks, so only what a guest could
  // have written (command, BAR0, interrupt line, MSI-X control, the pci_cfg window) comes back.
  for (uint16_t reg = 0; reg < pci::kLegacyConfigSize / 4; ++reg) {
    if (!config_.write(reg, 0, cfg.subspan(size_t{reg} * 4, 4))) return fail(EINVAL, "config space replay failed");
  }
  uint16_t control = config_.get_u16(msix_cap_ + 2);
  isr_.store(isr);
  config_vector_.store(VIRTIO_MSI_NO_VECTOR);
  auto assign = [&](uint16_t v) -> Result<uint16_t> {
    if (v == VIRTIO_MSI_NO_VECTOR) return v;
    if (!msix_.use_vector(v)) return fail(EIO, "MSI-X vector " + std::to_string(v) + " could not be routed");
    return v;
  };
  config_vector_.store(TRY(assign(config_vector)));
  for (uint16_t i = 0; i < nq; ++i) queue_vectors_[i].store(TRY(assign(vectors[i])));
  // Routes exist now, so pending bits of unmasked vectors go out as they would have.
  msix_.set_control(control & kMsixControlEnable, control & kMsixControlFunctionMask);
  TRY(core_->load_device(device, access));
  return core_->resume(*this, access);
}

}  // namespace microvm
