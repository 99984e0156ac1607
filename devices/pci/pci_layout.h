#pragma once
// Where the PCI root lives in the guest's address spaces. One struct so the root, the vmm's
// bus registrations and the ACPI tables (DSDT PNP0A03 _CRS, MCFG) describe the same thing.
#include <cstdint>

#include "microvm/guest_abi.h"

namespace microvm {

struct PciRootLayout {
  uint16_t segment = 0;
  uint8_t bus = 0;                                    // bus range is [bus, bus]: no bridges below
  uint16_t config_io_base = MICROVM_PORT_PCI_CONFIG;  // mechanism #1: 0xcf8-0xcff
  uint16_t config_io_size = 8;
  uint64_t ecam_base = MICROVM_PCI_ECAM_BASE;  // 4 KiB per function, bus 0 only
  uint64_t ecam_size = uint64_t{1} << 20;      // 32 slots x 8 functions x 4 KiB
  uint64_t mmio_base = MICROVM_PCI_MMIO_BASE;  // BAR window, below 4 GiB
  uint64_t mmio_size = MICROVM_PCI_MMIO_SIZE;
};

}  // namespace microvm
