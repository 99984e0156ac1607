#pragma once
// ACPI tables: RSDP, XSDT, FADT, MADT, DSDT. They give the guest the CPU list (MADT), a
// power-off (S5 through PM1a_CNT), a reset register and, with PCI, the root bridge.
#include <cstdint>
#include <optional>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace microvm {

struct PciHostWindow {
  uint32_t mmio_base;
  uint32_t mmio_size;
};

struct AcpiSpec {
  uint32_t num_cpus = 1;
  std::optional<PciHostWindow> pci;  // describe a PCI root bridge (PNP0A03) when set
  bool pvpanic = false;              // describe the pvpanic device (QEMU0001, port 0x505)
};

// Writes the tables into the reserved area at MICROVM_ACPI_ADDR; returns the RSDP address.
[[nodiscard]] Result<GuestAddress> write_acpi_tables(const GuestMemory& mem, const AcpiSpec& spec);

}  // namespace microvm
