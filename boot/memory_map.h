#pragma once
// The guest-physical layout: where RAM goes around the MMIO gap, and the e820 map the guest sees.
#include <cstdint>
#include <vector>

#include "memory/guest_memory.h"

namespace microvm {

enum class E820Type : uint32_t { kRam = 1, kReserved = 2, kAcpi = 3 };

struct E820Entry {
  uint64_t addr;
  uint64_t size;
  E820Type type;
};

// RAM ranges for `ram_bytes` of memory: below the 3 GiB MMIO gap, the rest above 4 GiB.
std::vector<MemoryLayoutEntry> ram_layout(uint64_t ram_bytes);

// The e820 map for the given RAM ranges: low RAM minus the legacy BIOS hole, the ACPI area.
std::vector<E820Entry> e820_map(std::span<const GuestRegion> ram);

}  // namespace microvm
