#pragma once
// Creates the virtio devices a VmConfig asks for and attaches each to one generic transport
// (PCI or MMIO), the buses, and KVM's ioeventfd/irqfd/MSI routing. Also owns the PCI root.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/backend_log_relay.h"
#include "base/event_loop.h"
#include "base/log.h"
#include "base/loop_registration.h"
#include "boot/acpi/acpi_tables.h"
#include "devices/console/port_backend.h"
#include "devices/pci/pci_root.h"
#include "memory/guest_memory.h"
#include "microvm/vm.h"
#include "virtio/transport/device_snapshot.h"
#include "virtio/transport/mmio_transport.h"
#include "virtio/transport/pci_transport.h"
#include "vmm/io_bus.h"
#include "vmm/kvm.h"
#include "vmm/kvm_vm_services.h"
#include "vmm/pmem_write_trap.h"

namespace microvm {

class BalloonDevice;
class BlkDevice;
class BlockBackend;
class NetDevice;

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
    PortBackend* console_port = nullptr;     // --console virtio: port 0 on stdio (outlives this)
    // VmConfig::on_event's way out ("device-error", "backend-died"); any thread, must not block.
    std::function<void(const char* type, std::string detail)> on_event;
  };
  [[nodiscard]] static Result<std::unique_ptr<VirtioWiring>> create(Context ctx);
  ~VirtioWiring();

  // Kernel command-line fragment announcing virtio-mmio devices (empty for PCI).
  std::string kernel_cmdline() const { return cmdline_; }
  // The PCI host bridge window to describe in ACPI.
  std::optional<PciHostWindow> pci_window() const;
  // Appends one group per device ("block_ID", "net_ID", "rng", "fs_TAG") plus the "block"
  // and "net" totals. Relaxed atomic reads only: safe from any thread while devices run.
  void metrics(std::vector<MetricGroup>& out) const;
  // The balloon device (owned by its transport), or null. Its control calls run on the loop.
  BalloonDevice* balloon() const { return balloon_; }
  // A virtio-blk device by drive id (DiskConfig::id, else "drive" + its index), with the
  // configuration it was opened with; null if none. Its control calls run on the loop.
  struct Disk {
    std::string id;
    BlkDevice* device;
    DiskConfig config;
  };
  Disk* disk(const std::string& id);
  // A virtio-net device by interface id (NetConfig::id, else "net" + its index), or null.
  NetDevice* net(const std::string& id);
  // Opens an image the way --disk does (format never probed, the image lock taken, the
  // sandbox's io_uring rules), on the calling thread.
  [[nodiscard]] Result<std::unique_ptr<BlockBackend>> open_disk_backend(const DiskConfig& d) const;

  // Every virtio device in attach order (disks, nets, shares, rng: fixed by the VmConfig), for
  // snapshot/restore. save(): with the vCPUs paused; load(): right after create(), before the
  // vCPUs first run.
  DeviceSnapshotSet snapshot_devices();

 private:
  explicit VirtioWiring(Context ctx) : ctx_(std::move(ctx)), services_(ctx_.vm) {}
  [[nodiscard]] Result<void> setup_pci_root();
  // Attaches `device`; `group` names its metrics and `counters` appends its device
  // counters (called later, from any thread).
  using CounterFn = std::function<void(MetricGroup&)>;
  [[nodiscard]] Result<void> attach(std::unique_ptr<VirtioDevice> device, const char* what, std::string group,
                                    CounterFn counters);
  [[nodiscard]] Result<void> setup_console();
  // The transport's NEEDS_RESET callback for device `group` ("block_rootfs"): a
  // "device-error" event. Empty without VmConfig::on_event.
  std::function<void()> needs_reset_reporter(const std::string& group) const;
  [[nodiscard]] Result<void> add_pmem(const PmemConfig& p, size_t index, uint64_t& next_gpa);
  [[nodiscard]] Result<void> relay_backend_log(Fd read_end, std::string source);

  // A back end's stderr on its way to our log, while the back end runs.
  struct Relay {
    std::unique_ptr<BackendLogRelay> log;
    LoopRegistration registration;
  };

  Context ctx_;
  KvmVmServices services_;
  // Host sides of the named console ports: declared before the transports, so the device
  // (which stops them) goes first.
  std::vector<std::unique_ptr<PortBackend>> console_ports_;
  std::unique_ptr<PciRoot> pci_root_;
  std::vector<std::unique_ptr<PciTransport>> pci_devices_;
  std::vector<std::unique_ptr<MmioTransport>> mmio_devices_;
  std::string cmdline_;
  struct MetricSource {
    std::string group;
    CounterFn counters;
    const VirtioDevice* device;
    const TransportCounters* transport;
  };
  std::vector<MetricSource> metric_sources_;
  BalloonDevice* balloon_ = nullptr;
  std::vector<Disk> disks_;
  std::vector<std::pair<std::string, NetDevice*>> nets_;
  std::vector<std::unique_ptr<PmemWriteTrap>> pmem_traps_;
  std::vector<std::unique_ptr<Relay>> relays_;  // after the devices: unregistered first
};

}  // namespace microvm
