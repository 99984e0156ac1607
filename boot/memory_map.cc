#include "boot/memory_map.h"

#include <algorithm>

#include "microvm/guest_abi.h"

namespace microvm {

std::vector<MemoryLayoutEntry> ram_layout(uint64_t ram_bytes) {
  std::vector<MemoryLayoutEntry> out;
  uint64_t low = std::min<uint64_t>(ram_bytes, MICROVM_MMIO_GAP_START);
  out.push_back({GuestAddress(0), low});
  if (ram_bytes > low) out.push_back({GuestAddress(MICROVM_HIGH_RAM_START), ram_bytes - low});
  return out;
}

std::vector<E820Entry> e820_map(std::span<const GuestRegion> ram) {
  // Below 1 MiB: conventional memory up to the EBDA, then video/ROM space which holds our
  // ACPI tables. The kernel expects this shape from any PC firmware.
  constexpr uint64_t kEbda = 0x9fc00;
  constexpr uint64_t kHighMem = 0x100000;
  std::vector<E820Entry> out;
  for (const auto& r : ram) {
    uint64_t start = r.guest_base.raw();
    uint64_t end = r.end().raw();
    if (start < kHighMem) {
      out.push_back({start, std::min(end, kEbda) - start, E820Type::kRam});
      out.push_back({MICROVM_ACPI_ADDR, kHighMem - MICROVM_ACPI_ADDR, E820Type::kReserved});
      if (end > kHighMem) out.push_back({kHighMem, end - kHighMem, E820Type::kRam});
    } else {
      out.push_back({start, end - start, E820Type::kRam});
    }
  }
  return out;
}

}  // namespace microvm
