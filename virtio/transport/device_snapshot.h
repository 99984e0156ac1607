#pragma once
// The virtio devices of a VM as one list for snapshot/restore: each entry is named after its
// transport, position and device type, and carries its transport's blob (the device's own blob
// nested inside). The vmm builds the list in the order it attached the devices, which the VM
// configuration fixes, so a restore with the same configuration meets the same names in the
// same order; any difference is refused by name before a device is touched.
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "devices/pci/pci_root.h"
#include "virtio/transport/mmio_transport.h"
#include "virtio/transport/pci_transport.h"

namespace microvm {

struct DeviceState {
  std::string name;             // e.g. "virtio-pci#0:blk", "virtio-mmio@0xd0000000:rng"
  std::vector<std::byte> blob;  // the transport's save_state()
};

class DeviceSnapshotSet {
 public:
  // The root, if any, whose BAR decoding must follow restored PCI config spaces.
  void set_pci_root(PciRoot* root) { pci_root_ = root; }
  void add(PciTransport& t);
  void add(MmioTransport& t);

  std::vector<std::string> names() const;
  // Quiesces and saves every device, in order. Run with the vCPUs paused.
  [[nodiscard]] Result<std::vector<DeviceState>> save(LoopAccess access = LoopAccess::kPost) const;
  // Loads each state into the device of the same name, on freshly created transports and
  // devices, then lets the PCI root decode the restored BARs.
  [[nodiscard]] Result<void> load(std::span<const DeviceState> states, LoopAccess access = LoopAccess::kPost) const;

  // A DeviceState as one self-describing blob for the snapshot container ("VDEV": name, then
  // the transport blob), and back; the reader is as strict as every other.
  static std::vector<std::byte> encode(const DeviceState& state);
  [[nodiscard]] static Result<DeviceState> decode(std::span<const std::byte> bytes);

 private:
  struct Entry {
    std::string name;
    std::function<Result<std::vector<std::byte>>(LoopAccess)> save;
    std::function<Result<void>(std::span<const std::byte>, LoopAccess)> load;
  };
  std::vector<Entry> entries_;
  size_t pci_count_ = 0;
  PciRoot* pci_root_ = nullptr;
};

// "blk", "net", "console", "rng", "balloon", "vsock", "fs", "pmem" or "type<N>".
std::string virtio_type_name(uint32_t device_type);

}  // namespace microvm
