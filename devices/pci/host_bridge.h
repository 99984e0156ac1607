#pragma once
// The host bridge at bus 0, slot 0: a config header and nothing else (class 06 00 00).
#include <mutex>

#include "devices/pci/pci_config_space.h"
#include "devices/pci/pci_function.h"

namespace microvm {

class PciHostBridge final : public PciFunction {
 public:
  // Intel vendor id with a device id no real part decodes specially in Linux.
  static constexpr uint16_t kVendorId = 0x8086;
  static constexpr uint16_t kDeviceId = 0x0d57;

  PciHostBridge();
  uint32_t read_config(uint16_t reg) override;
  void write_config(uint16_t reg, uint8_t offset, std::span<const std::byte> data) override;
  std::vector<PciBar> bars() override { return {}; }

 private:
  std::mutex mu_;
  PciConfigSpace config_;  // guarded by mu_
};

}  // namespace microvm
