#pragma once
// What a virtio transport needs from the VM, as an interface: the vmm implements it with
// KVM ioeventfd/irqfd/MSI routes; unit tests implement it with plain eventfds.
#include <cstdint>

#include "base/result.h"

namespace microvm {

class VmServices {
 public:
  virtual ~VmServices() = default;

  // Doorbell fast path: KVM signals `fd` when the guest writes to guest-physical MMIO
  // address `addr` (any width, any value), without a VM exit reaching our vCPU thread.
  [[nodiscard]] virtual Result<void> add_ioeventfd(uint64_t addr, int fd) = 0;
  virtual void remove_ioeventfd(uint64_t addr, int fd) = 0;

  // Like add_ioeventfd, but only 4-byte writes of exactly `value` signal `fd`. virtio-mmio
  // needs it: all queues share the QueueNotify register and the written value is the queue
  // index (§4.2.2). The default refuses, and the transport then serves QueueNotify by trapping.
  [[nodiscard]] virtual Result<void> add_ioeventfd_datamatch(uint64_t addr, uint32_t value, int fd) {
    return fail(EOPNOTSUPP, "ioeventfd with datamatch not supported");
  }
  virtual void remove_ioeventfd_datamatch(uint64_t addr, uint32_t value, int fd) {}

  // Edge interrupt on a legacy IOAPIC pin (virtio-mmio): writing `fd` raises `gsi`.
  [[nodiscard]] virtual Result<void> add_irqfd_gsi(uint32_t gsi, int fd) = 0;
  virtual void remove_irqfd_gsi(uint32_t gsi, int fd) = 0;

  // MSI (virtio-pci MSI-X): writing `fd` delivers the message (addr, data). Returns a route id
  // to update when the guest reprograms the MSI-X table entry, or to remove.
  [[nodiscard]] virtual Result<uint32_t> add_irqfd_msi(uint64_t addr, uint32_t data, int fd) = 0;
  [[nodiscard]] virtual Result<void> update_msi(uint32_t route, uint64_t addr, uint32_t data) = 0;
  virtual void remove_irqfd_msi(uint32_t route, int fd) = 0;
};

}  // namespace microvm
