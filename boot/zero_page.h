#pragma once
// Builds struct boot_params (the "zero page") for the Linux 64-bit boot protocol,
// plus the command line, initrd and setup_data it points to.
#include <cstdint>
#include <span>
#include <string>

#include "base/result.h"
#include "boot/kernel_loader.h"
#include "boot/memory_map.h"
#include "memory/guest_memory.h"

namespace microvm {

struct BootParamsSpec {
  const LoadedKernel* kernel = nullptr;
  std::string cmdline;
  GuestAddress initrd_addr;  // 0 size = no initrd
  uint64_t initrd_size = 0;
  GuestAddress acpi_rsdp;               // 0 = none
  std::span<const std::byte> rng_seed;  // SETUP_RNG_SEED payload; empty = none
};

// Where to put an initrd of `size` bytes: as high as possible in low RAM, below the kernel's
// limit, page aligned, above the kernel image. Fails if it does not fit.
[[nodiscard]] Result<GuestAddress> place_initrd(const GuestMemory& mem, const LoadedKernel& kernel, uint64_t size);

// Writes the zero page at MICROVM_ZERO_PAGE_ADDR and what it references. Checks the cmdline length.
[[nodiscard]] Result<GuestAddress> write_boot_params(const GuestMemory& mem, const BootParamsSpec& spec);

}  // namespace microvm
