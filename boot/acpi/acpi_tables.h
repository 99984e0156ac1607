#pragma once
// ACPI tables for a hardware-reduced platform: RSDP, XSDT, FADT, MADT, DSDT.
// Hardware-reduced ACPI gives the guest a power-off (S5 through the sleep control register)
// and a reset register without emulating PM1 blocks, GPEs or an SCI.
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
};

// Writes the tables into the reserved area at MICROVM_ACPI_ADDR; returns the RSDP address.
[[nodiscard]] Result<GuestAddress> write_acpi_tables(const GuestMemory& mem, const AcpiSpec& spec);

}  // namespace microvm
