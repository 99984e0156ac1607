#pragma once
// Creates the virtio devices a VmConfig asks for and attaches each to one generic transport
// (PCI or MMIO), the buses, and KVM's ioeventfd/irqfd/MSI routing. Also owns the PCI root.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/log.h"
#include "boot/acpi/acpi_tables.h"
#include "devices/pci/pci_root.h"
#include "memory/guest_memory.h"
#include "microvm/vm.h"
#include "virtio/transport/device_snapshot.h"
#include "virtio/transport/mmio_transport.h"
#include "virtio/transport/pci_transport.h"
#include "vmm/io_bus.h"
#include "vmm/kvm.h"
#include "vmm/kvm_vm_services.h"
#include "devices/vhost/backend_log_relay.h"
#include "virtio/loop_registration.h"

namespace microvm {

class VirtioWiring final {
 public:
  struct Context {
    const VmConfig& config;
    const VmFd& vm;
    const GuestMemory& memory;
    EventLoop& loop;
    IoBus& pio;
    IoBus& mmio;
    Logger& log;
    std::function<void()> on_reset_request;  // port 0xcf9 (shares the PCI config dword)
  };
  [[nodiscard]] static Result<std::unique_ptr<VirtioWiring>> create(Context ctx);
  ~VirtioWiring();

  // Kernel command-line fragment announcing virtio-mmio devices (empty for PCI).
  std::string kernel_cmdline() const { return cmdline_; }
  // The PCI host bridge window to describe in ACPI.
  std::optional<PciHostWindow> pci_window() const;

  // Every virtio device in attach order (disks, nets, shares, rng: fixed by the VmConfig), for
  // snapshot/restore. save(): with the vCPUs paused; load(): right after create(), before the
  // vCPUs first run.
  DeviceSnapshotSet snapshot_devices();

 private:
  explicit VirtioWiring(Context ctx) : ctx_(std::move(ctx)), services_(ctx_.vm) {}
  [[nodiscard]] Result<void> setup_pci_root();
  [[nodiscard]] Result<void> attach(std::unique_ptr<VirtioDevice> device, const char* what);
  [[nodiscard]] Result<void> relay_backend_log(Fd read_end, std::string source);

  // A back end's stderr on its way to our log, while the back end runs.
  struct Relay {
    std::unique_ptr<BackendLogRelay> log;
    LoopRegistration registration;
  };

  Context ctx_;
  KvmVmServices services_;
  std::unique_ptr<PciRoot> pci_root_;
  std::vector<std::unique_ptr<PciTransport>> pci_devices_;
  std::vector<std::unique_ptr<MmioTransport>> mmio_devices_;
  std::string cmdline_;
  std::vector<std::unique_ptr<Relay>> relays_;  // after the devices: unregistered first
};

}  // namespace microvm
