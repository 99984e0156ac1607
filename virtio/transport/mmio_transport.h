#pragma once
// virtio-mmio, version 2 registers only (virtio 1.x §4.2.2), wrapping any VirtioDevice.
//
// Wiring (vmm):
//   auto t = TRY(MmioTransport::create(std::move(dev), {.base_address = a, .gsi = g}, mem, loop, vm, log));
//   mmio_bus.insert(a, MmioTransport::kWindowSize, *t);     // t is the IoHandler
//   cmdline += " " + t->cmdline_fragment();                 // "virtio_mmio.device=4K@0x...:g"
//
// Threading: io_read/io_write run on vCPU threads (several at once: a mutex serializes
// them). DRIVER_OK and reset run the device's activate()/reset() on the event-loop thread
// while the writing vCPU waits. notify_queue/notify_config (Interrupt) are called by the
// device on the loop thread and only touch atomics and the irq eventfd.
// Destroy the transport on the loop thread or after the loop has stopped running.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "base/event_fd.h"
#include "base/io_handler.h"
#include "virtio/transport/transport_core.h"

namespace microvm {

struct MmioTransportParams {
  uint64_t base_address = 0;  // guest-physical base of the register window (4 KiB slot)
  uint32_t gsi = 0;           // IOAPIC pin raised through an irqfd
};

// The Linux command-line fragment that declares one virtio-mmio device:
// "virtio_mmio.device=4K@0x<base>:<gsi>". The register window is 0x200 bytes, but devices sit
// in 4 KiB slots, so the size given to the guest is the slot.
std::string virtio_mmio_cmdline(uint64_t base_address, uint32_t gsi);

class MmioTransport final : public IoHandler, public Interrupt {
 public:
  static constexpr uint64_t kWindowSize = 0x200;

  [[nodiscard]] static Result<std::unique_ptr<MmioTransport>> create(std::unique_ptr<VirtioDevice> device,
                                                                     const MmioTransportParams& params,
                                                                     const GuestMemory& memory, EventLoop& loop,
                                                                     VmServices& vm, Logger& log);
  ~MmioTransport() override;

  // IoHandler: offsets relative to base_address.
  void io_read(uint64_t offset, std::span<std::byte> data) override;
  void io_write(uint64_t offset, std::span<const std::byte> data) override;

  // Interrupt (§4.2.3.4): sets InterruptStatus bits and raises the GSI.
  void notify_queue(uint16_t queue_index) override;
  void notify_config() override;

  // --- Snapshot/restore (docs/snapshot-format.md, "Device state"); vCPUs paused. ---
  // The registers plus the device's own blob (after the device quiesced).
  [[nodiscard]] Result<std::vector<std::byte>> save_state(LoopAccess access = LoopAccess::kPost);
  // On a freshly created transport around a fresh device of the same kind: restores the
  // registers (checked as guest writes are), hands the device its blob, and re-activates the
  // device if the driver had. After an error, discard the transport.
  [[nodiscard]] Result<void> load_state(std::span<const std::byte> blob, LoopAccess access = LoopAccess::kPost);

  uint64_t base_address() const { return params_.base_address; }
  uint32_t gsi() const { return params_.gsi; }
  std::string cmdline_fragment() const { return virtio_mmio_cmdline(params_.base_address, params_.gsi); }
  VirtioDevice& device() { return core_->device(); }
  const TransportCounters& counters() const { return core_->counters(); }
  // Called (loop thread) when the device enters NEEDS_RESET, once until the driver resets it.
  void set_on_needs_reset(std::function<void()> fn) { core_->set_on_needs_reset(std::move(fn)); }
  uint32_t interrupt_status() const { return interrupt_status_.load(); }
  // The irq eventfd (registered with add_irqfd_gsi); exposed for tests and diagnostics.
  int irq_fd() const { return irq_.fd(); }

 private:
  MmioTransport(const MmioTransportParams& params, EventFd irq, VmServices& vm)
      : params_(params), irq_(std::move(irq)), vm_(vm) {}
  uint32_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint32_t value);

  const MmioTransportParams params_;
  EventFd irq_;
  VmServices& vm_;
  bool irqfd_registered_ = false;
  std::mutex mu_;
  std::unique_ptr<TransportCore> core_;  // registers guarded by mu_
  std::atomic<uint32_t> interrupt_status_{0};
};

}  // namespace microvm
