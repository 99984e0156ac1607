#include "devices/pci/host_bridge.h"

namespace microvm {

PciHostBridge::PciHostBridge()
    : config_(PciIds{.vendor_id = kVendorId,
                     .device_id = kDeviceId,
                     .revision = 0,
                     .class_code = 0x060000,  // bridge, host bridge
                     .subsystem_vendor_id = 0,
                     .subsystem_id = 0}) {}

uint32_t PciHostBridge::read_config(uint16_t reg) {
  std::lock_guard lock(mu_);
  return config_.read(reg);
}

void PciHostBridge::write_config(uint16_t reg, uint8_t offset, std::span<const std::byte> data) {
  std::lock_guard lock(mu_);
  (void)config_.write(reg, offset, data);  // malformed writes are dropped; the root counts them
}

}  // namespace microvm
