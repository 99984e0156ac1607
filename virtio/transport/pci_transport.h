#pragma once
// Modern virtio-pci (virtio 1.x §4.1) with MSI-X, wrapping any VirtioDevice as one PCI
// function with one 64-bit memory BAR (BAR0) that holds every virtio structure and the
// MSI-X table and PBA.
//
// BAR0 layout (kBar0Size bytes):
//   0x0000 common cfg   0x1000 ISR   0x2000 device cfg   0x3000 notify (4 bytes per queue)
//   0x4000 MSI-X table  0x6000 MSI-X PBA
//
// Wiring (vmm):
//   auto t = TRY(PciTransport::create(std::move(dev), {}, mem, loop, vm, log));
//   TRY(root.add_function(slot, *t));  // BAR0 gets an address; the root's PciBarListener
//                                      // then tells the vmm where to put t->bar0() on the
//                                      // MMIO bus, and again whenever the guest moves it.
// The transport moves its own doorbell ioeventfds when BAR0 moves.
//
// Threading: config accesses (through the root) and BAR accesses come from vCPU threads and
// are serialized by one mutex. DRIVER_OK/reset run the device on the loop thread while the
// vCPU waits. notify_queue/notify_config (Interrupt) run on the loop thread and only take
// the MSI-X table's own lock. Destroy on the loop thread or after the loop stopped running.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

#include "base/io_handler.h"
#include "devices/pci/pci_config_space.h"
#include "devices/pci/pci_function.h"
#include "virtio/transport/msix.h"
#include "virtio/transport/transport_core.h"

namespace microvm {

struct PciTransportParams {
  uint16_t subsystem_id = 0x40;  // §4.1.2.1: non-transitional devices use >= 0x40
  // MSI-X vectors; 0 picks one per queue plus one for configuration changes.
  uint16_t msix_vectors = 0;
};

class PciTransport final : public PciFunction, public IoHandler, public Interrupt {
 public:
  static constexpr uint64_t kBar0Size = 0x8000;
  static constexpr uint64_t kCommonCfgOffset = 0x0000;
  static constexpr uint64_t kCommonCfgSize = 0x38;
  static constexpr uint64_t kIsrOffset = 0x1000;
  static constexpr uint64_t kDeviceCfgOffset = 0x2000;
  static constexpr uint64_t kDeviceCfgSize = 0x1000;
  static constexpr uint64_t kNotifyOffset = 0x3000;
  static constexpr uint32_t kNotifyOffMultiplier = 4;
  static constexpr uint64_t kMsixTableOffset = 0x4000;
  static constexpr uint64_t kMsixPbaOffset = 0x6000;
  static constexpr uint16_t kMaxQueues = 0x1000 / kNotifyOffMultiplier;
  static constexpr uint16_t kMaxMsixVectors = (kMsixPbaOffset - kMsixTableOffset) / MsixTable::kEntrySize;
  static constexpr uint16_t VIRTIO_MSI_NO_VECTOR = 0xffff;

  [[nodiscard]] static Result<std::unique_ptr<PciTransport>> create(std::unique_ptr<VirtioDevice> device,
                                                                    const PciTransportParams& params,
                                                                    const GuestMemory& memory, EventLoop& loop,
                                                                    VmServices& vm, Logger& log);
  ~PciTransport() override;

  // PciFunction (configuration space, through the PciRoot).
  uint32_t read_config(uint16_t reg) override;
  void write_config(uint16_t reg, uint8_t offset, std::span<const std::byte> data) override;
  std::vector<PciBar> bars() override;

  // IoHandler for BAR0: offsets relative to the BAR's base.
  void io_read(uint64_t offset, std::span<std::byte> data) override;
  void io_write(uint64_t offset, std::span<const std::byte> data) override;
  IoHandler& bar0() { return *this; }

  // Interrupt: the MSI-X vector the driver chose for the queue / for config changes.
  void notify_queue(uint16_t queue_index) override;
  void notify_config() override;

  // --- Snapshot/restore (docs/snapshot-format.md, "Device state"); vCPUs paused. ---
  // Registers, config space, MSI-X table and vectors, plus the device's own blob.
  [[nodiscard]] Result<std::vector<std::byte>> save_state(LoopAccess access = LoopAccess::kPost);
  // On a freshly created transport (already added to its PciRoot) around a fresh device of
  // the same kind. The config space comes back through the write masks, as guest writes do;
  // afterwards call PciRoot::refresh_bars() so the root decodes BAR0 where the guest had it.
  // After an error, discard the transport.
  [[nodiscard]] Result<void> load_state(std::span<const std::byte> blob, LoopAccess access = LoopAccess::kPost);

  VirtioDevice& device() { return core_->device(); }
  const TransportCounters& counters() const { return core_->counters(); }
  // Called (loop thread) when the device enters NEEDS_RESET, once until the driver resets it.
  void set_on_needs_reset(std::function<void()> fn) { core_->set_on_needs_reset(std::move(fn)); }
  // Where BAR0 decodes now (memory space enabled and programmed), if anywhere.
  std::optional<uint64_t> bar0_address();
  // For tests and diagnostics: the irq eventfd behind an MSI-X vector (-1 if unused).
  int msix_irq_fd(uint16_t vector) const { return msix_.irq_fd(vector); }
  bool msix_pending(uint16_t vector) const { return msix_.pending(vector); }

 private:
  PciTransport(const PciIds& ids, uint16_t vectors, VmServices& vm, Logger& log);
  void build_capabilities(uint16_t num_queues);
  void bar_read(uint64_t offset, std::span<std::byte> data);         // mu_ held
  void bar_write(uint64_t offset, std::span<const std::byte> data);  // mu_ held
  uint64_t common_read(uint64_t offset, size_t len);
  void common_write(uint64_t offset, size_t len, uint64_t value);
  uint16_t assign_vector(uint16_t vector);
  void after_config_write(std::optional<uint64_t> old_bar0, uint16_t old_msix_control);
  uint32_t pci_cfg_cap_read();
  void pci_cfg_cap_write(uint8_t offset, std::span<const std::byte> data);

  mutable std::mutex mu_;
  PciConfigSpace config_;                // guarded by mu_
  MsixTable msix_;                       // own lock
  std::unique_ptr<TransportCore> core_;  // registers guarded by mu_
  std::atomic<uint8_t> isr_{0};
  std::atomic<uint16_t> config_vector_{VIRTIO_MSI_NO_VECTOR};
  std::unique_ptr<std::atomic<uint16_t>[]> queue_vectors_;
  uint8_t msix_cap_ = 0;  // config-space offsets of the capabilities we interpret
  uint8_t pci_cfg_cap_ = 0;
};

}  // namespace microvm
