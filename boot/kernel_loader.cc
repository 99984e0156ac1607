#include "boot/kernel_loader.h"

#include <elf.h>

#include <array>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "boot/guest_copy.h"
#include "microvm/guest_abi.h"

namespace microvm {
namespace {

constexpr size_t kSetupHeaderOffset = 0x1f1;
constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS"
constexpr uint16_t kBootFlag = 0xaa55;
constexpr uint16_t kMinBootProtocol = 0x020c;  // 2.12: xloadflags, needed for the 64-bit entry
constexpr uint64_t kMaxPhdrs = 128;
constexpr uint64_t kEntry64Offset = 0x200;  // startup_64 sits 512 bytes into the protected-mode kernel

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

// Copies `file_len` bytes at `offset` of the image into guest memory and zero-fills up to
// `mem_len` (file_len <= mem_len, checked by the callers).
Result<void> place(const GuestMemory& mem, GuestCopier& copier, GuestAddress at, ByteSource& image, uint64_t offset,
                   uint64_t file_len, uint64_t mem_len) {
  auto dst = mem.translate(at, mem_len);
  if (!dst)
    return fail("kernel segment at " + hex(at.raw()) + " (" + std::to_string(mem_len) +
                " bytes) does not fit in guest RAM; give the VM more memory");
  auto copied = copier.copy(at, image, offset, file_len);
  if (!copied) return std::unexpected(copied.error().context("kernel"));
  if (mem_len > file_len) TRY(mem.zero(at + file_len, mem_len - file_len));
  return {};
}

// Reads a fixed-size header; false when the image is shorter.
template <class T>
Result<bool> read_header(ByteSource& image, uint64_t offset, T& out) {
  if (image.size() < offset || image.size() - offset < sizeof out) return false;
  TRY(image.read_at(offset, std::as_writable_bytes(std::span(&out, 1))));
  return true;
}

}  // namespace

Result<LoadedKernel> load_elf_kernel(const GuestMemory& mem, ByteSource& image) {
  Elf64_Ehdr eh;
  if (!TRY(read_header(image, 0, eh))) return fail("kernel: truncated ELF header");
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return fail("kernel: not an ELF file");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) return fail("kernel: ELF is not 64-bit");
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return fail("kernel: ELF is not little-endian");
  if (eh.e_machine != EM_X86_64)
    return fail("kernel: ELF is not for x86-64 (e_machine " + std::to_string(eh.e_machine) + ")");
  if (eh.e_phentsize != sizeof(Elf64_Phdr))
    return fail("kernel: ELF e_phentsize " + std::to_string(eh.e_phentsize) + " is not " +
                std::to_string(sizeof(Elf64_Phdr)));
  if (eh.e_phnum == 0 || eh.e_phnum > kMaxPhdrs)
    return fail("kernel: ELF has " + std::to_string(eh.e_phnum) + " program headers");
  uint64_t ph_end;
  if (__builtin_mul_overflow(uint64_t{eh.e_phnum}, sizeof(Elf64_Phdr), &ph_end) ||
      __builtin_add_overflow(ph_end, eh.e_phoff, &ph_end) || ph_end > image.size())
    return fail("kernel: ELF program headers lie outside the file (truncated?)");
  std::vector<Elf64_Phdr> phdrs(eh.e_phnum);
  TRY(image.read_at(eh.e_phoff, std::as_writable_bytes(std::span(phdrs))));
  GuestCopier copier(mem);

  LoadedKernel out;
  out.format = KernelFormat::kElf;
  uint64_t lo = UINT64_MAX, hi = 0;
  bool entry_inside = false;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    const Elf64_Phdr& ph = phdrs[i];
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    uint64_t file_end, mem_end;
    if (ph.p_filesz > ph.p_memsz) return fail("kernel: ELF segment " + std::to_string(i) + " has p_filesz > p_memsz");
    if (__builtin_add_overflow(ph.p_offset, ph.p_filesz, &file_end) || file_end > image.size())
      return fail("kernel: ELF segment " + std::to_string(i) + " extends past the end of the file (truncated?)");
    if (__builtin_add_overflow(ph.p_paddr, ph.p_memsz, &mem_end))
      return fail("kernel: ELF segment " + std::to_string(i) + " address overflows");
    if (ph.p_paddr < 0x100000)
      return fail("kernel: ELF segment " + std::to_string(i) + " at " + hex(ph.p_paddr) +
                  " would overwrite boot structures below 1 MiB");
    TRY(place(mem, copier, GuestAddress(ph.p_paddr), image, ph.p_offset, ph.p_filesz, ph.p_memsz));
    lo = std::min(lo, ph.p_paddr);
    hi = std::max(hi, mem_end);
    if (eh.e_entry >= ph.p_paddr && eh.e_entry < mem_end) entry_inside = true;
  }
  if (hi == 0) return fail("kernel: ELF has no loadable segment");
  if (!entry_inside) return fail("kernel: ELF entry point " + hex(eh.e_entry) + " is not inside a loaded segment");
  out.entry = GuestAddress(eh.e_entry);
  out.image_start = GuestAddress(lo);
  out.image_end = GuestAddress(hi);
  return out;
}

Result<LoadedKernel> load_bzimage(const GuestMemory& mem, ByteSource& image) {
  setup_header hdr;
  if (!TRY(read_header(image, kSetupHeaderOffset, hdr))) return fail("kernel: truncated bzImage (no setup header)");
  if (hdr.boot_flag != kBootFlag || hdr.header != kHdrSMagic) return fail("kernel: not a bzImage (no HdrS signature)");
  if (hdr.version < kMinBootProtocol)
    return fail("kernel: bzImage boot protocol " + std::to_string(hdr.version >> 8) + "." +
                std::to_string(hdr.version & 0xff) + " is too old (need 2.12+ for the 64-bit entry)");
  if (!(hdr.xloadflags & XLF_KERNEL_64))
    return fail("kernel: bzImage has no 64-bit entry point (xloadflags lacks XLF_KERNEL_64)");
  if (!(hdr.loadflags & LOADED_HIGH)) return fail("kernel: bzImage must be loaded high (zImage is not supported)");

  uint64_t setup_sects = hdr.setup_sects ? hdr.setup_sects : 4;
  uint64_t setup_bytes = (setup_sects + 1) * 512;
  if (setup_bytes >= image.size()) return fail("kernel: truncated bzImage (setup area covers the whole file)");
  const uint64_t payload_size = image.size() - setup_bytes;
  // The 64-bit entry is 0x200 bytes into the protected-mode kernel: it must be image bytes.
  if (payload_size <= kEntry64Offset)
    return fail("kernel: truncated bzImage (protected-mode kernel ends before its 64-bit entry point)");
  if (hdr.syssize != 0 && uint64_t{hdr.syssize} * 16 > payload_size + 15)
    return fail("kernel: truncated bzImage (syssize says " + std::to_string(uint64_t{hdr.syssize} * 16) +
                " bytes, file has " + std::to_string(payload_size) + ")");

  uint64_t align = hdr.kernel_alignment;
  if (hdr.relocatable_kernel && (align == 0 || (align & (align - 1))))
    return fail("kernel: bzImage kernel_alignment is not a power of two");
  uint64_t load = hdr.pref_address ? hdr.pref_address : MICROVM_KERNEL_DEFAULT_ADDR;
  if (load < 0x100000) load = MICROVM_KERNEL_DEFAULT_ADDR;
  // A relocatable kernel may run anywhere on a kernel_alignment boundary (boot protocol
  // 2.05+); a pref_address off that boundary is rounded up, never used as is.
  if (hdr.relocatable_kernel && (load & (align - 1))) {
    if (load > UINT64_MAX - align) return fail("kernel: bzImage pref_address overflows");
    load = (load + align - 1) & ~(align - 1);
  }
  uint64_t footprint = std::max<uint64_t>(hdr.init_size, payload_size);
  if (footprint > (1ull << 32)) return fail("kernel: bzImage init_size is implausibly large");
  GuestCopier copier(mem);
  TRY(place(mem, copier, GuestAddress(load), image, setup_bytes, payload_size, footprint));

  LoadedKernel out;
  out.format = KernelFormat::kBzImage;
  out.entry = GuestAddress(load + kEntry64Offset);
  out.image_start = GuestAddress(load);
  out.image_end = GuestAddress(load + footprint);
  out.header = hdr;
  if (hdr.version >= 0x0206 && hdr.cmdline_size) out.cmdline_limit = hdr.cmdline_size;
  if (hdr.initrd_addr_max) out.initrd_addr_max = hdr.initrd_addr_max;
  if (hdr.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G) out.initrd_addr_max = UINT64_MAX;
  return out;
}

Result<LoadedKernel> load_kernel(const GuestMemory& mem, ByteSource& image) {
  std::array<unsigned char, SELFMAG> elf_magic;
  if (TRY(read_header(image, 0, elf_magic)) && std::memcmp(elf_magic.data(), ELFMAG, SELFMAG) == 0)
    return load_elf_kernel(mem, image);
  uint32_t magic;
  if (TRY(read_header(image, 0x202, magic)) && magic == kHdrSMagic) return load_bzimage(mem, image);
  return fail("kernel: unrecognised image format (expected an ELF vmlinux or a bzImage)");
}

Result<LoadedKernel> load_kernel(const GuestMemory& mem, std::span<const std::byte> image) {
  SpanByteSource src(image);
  return load_kernel(mem, src);
}
Result<LoadedKernel> load_elf_kernel(const GuestMemory& mem, std::span<const std::byte> image) {
  SpanByteSource src(image);
  return load_elf_kernel(mem, src);
}
Result<LoadedKernel> load_bzimage(const GuestMemory& mem, std::span<const std::byte> image) {
  SpanByteSource src(image);
  return load_bzimage(mem, src);
}

}  // namespace microvm
