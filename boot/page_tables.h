#pragma once
// The CPU state the Linux 64-bit boot protocol expects lives partly in guest memory:
// a GDT with flat 64-bit segments and page tables identity-mapping the low 4 GiB.
#include "base/result.h"
#include "memory/guest_memory.h"

namespace microvm {

struct LongModeTables {
  GuestAddress gdt;
  uint16_t gdt_limit;
  GuestAddress pml4;
};

// GDT selectors the boot protocol requires: __BOOT_CS = 0x10, __BOOT_DS = 0x18.
inline constexpr uint16_t kBootCodeSelector = 0x10;
inline constexpr uint16_t kBootDataSelector = 0x18;

[[nodiscard]] Result<LongModeTables> write_long_mode_tables(const GuestMemory& mem);

}  // namespace microvm
