#pragma once
// An Intel MultiProcessor table beside the ACPI tables. Linux prefers the MADT when ACPI is
// on, but every x86 kernel scans low memory for an MP floating pointer early in boot; one at
// the second place it looks (the top KiB of base memory) ends that scan at once, which matters
// where guest kernel code is slow. The table says the same as the MADT.
#include <cstdint>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace microvm {

// Writes the floating pointer at MICROVM_MPTABLE_ADDR and the configuration table in the
// reserved BIOS area. `ioapic_id` must match the MADT's.
[[nodiscard]] Result<void> write_mp_table(const GuestMemory& mem, uint32_t num_cpus, uint8_t ioapic_id);

}  // namespace microvm
