#pragma once
// Loads a Linux kernel image into guest memory: ELF (vmlinux) or bzImage.
// Kernel images are untrusted input: every header field is checked before use.
#include <asm/bootparam.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "microvm/byte_source.h"

namespace microvm {

enum class KernelFormat { kElf, kBzImage };

struct LoadedKernel {
  KernelFormat format = KernelFormat::kElf;
  GuestAddress entry;        // 64-bit boot protocol entry point
  GuestAddress image_start;  // lowest guest address the image occupies
  GuestAddress image_end;    // first byte past the image (including bss / init_size)
  // A bzImage's setup header, to be copied into the zero page; nullopt for ELF.
  std::optional<setup_header> header;
  uint32_t cmdline_limit = 2047;  // longest cmdline the kernel accepts, excluding the NUL
  uint64_t initrd_addr_max = 0x7fffffff;
};

// Detects the format by its magic and loads it. The headers are read into small buffers; the
// segments (ELF) or the protected-mode kernel (bzImage) go from the source straight into guest
// RAM (GuestCopier), never through a whole-image buffer.
[[nodiscard]] Result<LoadedKernel> load_kernel(const GuestMemory& mem, ByteSource& image);
[[nodiscard]] Result<LoadedKernel> load_elf_kernel(const GuestMemory& mem, ByteSource& image);
[[nodiscard]] Result<LoadedKernel> load_bzimage(const GuestMemory& mem, ByteSource& image);

// The same for an image already in memory.
[[nodiscard]] Result<LoadedKernel> load_kernel(const GuestMemory& mem, std::span<const std::byte> image);
[[nodiscard]] Result<LoadedKernel> load_elf_kernel(const GuestMemory& mem, std::span<const std::byte> image);
[[nodiscard]] Result<LoadedKernel> load_bzimage(const GuestMemory& mem, std::span<const std::byte> image);

}  // namespace microvm
