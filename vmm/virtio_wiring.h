#pragma once
// Creates the virtio devices a VmConfig asks for and attaches them to a transport
// (PCI or MMIO), the buses, and KVM's ioeventfd/irqfd/MSI routing.
#include <memory>
#include <optional>
#include <string>

#include "base/event_loop.h"
#include "base/log.h"
#include "boot/acpi/acpi_tables.h"
#include "memory/guest_memory.h"
#include "microvm/vm.h"
#include "vmm/io_bus.h"
#include "vmm/kvm.h"

namespace microvm {

class VirtioWiring {
 public:
  [[nodiscard]] static Result<std::unique_ptr<VirtioWiring>> create(const VmConfig& config, const VmFd& vm,
                                                                    const GuestMemory& memory, EventLoop& loop,
                                                                    IoBus& pio, IoBus& mmio, const Logger& log);
  ~VirtioWiring();

  // Kernel command-line fragment announcing virtio-mmio devices (empty for PCI).
  std::string kernel_cmdline() const { return cmdline_; }
  // The PCI host bridge window to describe in ACPI, when PCI is in use.
  std::optional<PciHostWindow> pci_window() const { return pci_window_; }

 private:
  VirtioWiring() = default;
  std::string cmdline_;
  std::optional<PciHostWindow> pci_window_;
};

}  // namespace microvm
