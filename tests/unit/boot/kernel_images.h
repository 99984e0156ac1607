#pragma once
// Synthetic kernel images for the loader and zero-page tests: a minimal ELF64 vmlinux and a
// minimal bzImage, built field by field so each test can break exactly one thing.
#include <asm/bootparam.h>
#include <elf.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace microvm::testing_images {

struct ElfSegment {
  uint32_t type = PT_LOAD;
  uint64_t paddr = 0x100000;
  uint64_t offset = 0;  // 0: placed after the headers automatically
  uint64_t filesz = 0;
  uint64_t memsz = 0;
  uint8_t fill = 0xcc;  // content byte
};

// An ELF64 x86-64 executable whose PT_LOAD contents are `fill` bytes.
inline std::vector<std::byte> make_elf(std::vector<ElfSegment> segs, uint64_t entry) {
  const size_t hdrs = sizeof(Elf64_Ehdr) + segs.size() * sizeof(Elf64_Phdr);
  size_t data = hdrs;
  for (auto& s : segs) {
    if (s.offset == 0) {
      s.offset = data;
      data += s.filesz;
    }
  }
  size_t total = hdrs;
  for (const auto& s : segs) total = std::max<size_t>(total, s.offset + s.filesz);
  std::vector<std::byte> img(total);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_entry = entry;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = static_cast<uint16_t>(segs.size());
  std::memcpy(img.data(), &eh, sizeof eh);
  for (size_t i = 0; i < segs.size(); ++i) {
    Elf64_Phdr ph{};
    ph.p_type = segs[i].type;
    ph.p_offset = segs[i].offset;
    ph.p_vaddr = 0xffffffff80000000ull + segs[i].paddr;
    ph.p_paddr = segs[i].paddr;
    ph.p_filesz = segs[i].filesz;
    ph.p_memsz = segs[i].memsz;
    ph.p_flags = PF_R | PF_X;
    ph.p_align = 0x1000;
    std::memcpy(img.data() + sizeof eh + i * sizeof ph, &ph, sizeof ph);
    if (segs[i].offset + segs[i].filesz <= img.size())
      std::memset(img.data() + segs[i].offset, segs[i].fill, segs[i].filesz);
  }
  return img;
}

inline Elf64_Ehdr elf_header(const std::vector<std::byte>& img) {
  Elf64_Ehdr eh;
  std::memcpy(&eh, img.data(), sizeof eh);
  return eh;
}
inline void set_elf_header(std::vector<std::byte>& img, const Elf64_Ehdr& eh) {
  std::memcpy(img.data(), &eh, sizeof eh);
}
inline Elf64_Phdr phdr(const std::vector<std::byte>& img, size_t i) {
  Elf64_Phdr ph;
  std::memcpy(&ph, img.data() + sizeof(Elf64_Ehdr) + i * sizeof ph, sizeof ph);
  return ph;
}
inline void set_phdr(std::vector<std::byte>& img, size_t i, const Elf64_Phdr& ph) {
  std::memcpy(img.data() + sizeof(Elf64_Ehdr) + i * sizeof ph, &ph, sizeof ph);
}

inline constexpr size_t kSetupHeaderOffset = 0x1f1;

struct BzImageSpec {
  uint8_t setup_sects = 4;
  size_t payload_size = 0x3000;
  uint16_t version = 0x020f;
  uint8_t loadflags = LOADED_HIGH;
  uint16_t xloadflags = XLF_KERNEL_64;
  uint8_t relocatable = 1;
  uint32_t kernel_alignment = 0x200000;
  uint32_t init_size = 0x10000;
  uint32_t cmdline_size = 0x7ff;
  uint32_t initrd_addr_max = 0x7fffffff;
  uint64_t pref_address = 0x1000000;
  int syssize_delta = 0;  // added to the correct syssize
};

// A bzImage: setup sectors (boot sector + setup header), then a payload whose byte i is (i & 0xff) ^ 0x5a.
inline std::vector<std::byte> make_bzimage(const BzImageSpec& s = {}) {
  size_t setup_bytes = (size_t{s.setup_sects ? s.setup_sects : 4u} + 1) * 512;
  std::vector<std::byte> img(setup_bytes + s.payload_size);
  setup_header h{};
  h.setup_sects = s.setup_sects;
  h.syssize = static_cast<uint32_t>((s.payload_size + 15) / 16 + s.syssize_delta);
  h.boot_flag = 0xaa55;
  h.jump = 0x66eb;
  h.header = 0x53726448;
  h.version = s.version;
  h.loadflags = s.loadflags;
  h.kernel_alignment = s.kernel_alignment;
  h.relocatable_kernel = s.relocatable;
  h.min_alignment = 21;
  h.xloadflags = s.xloadflags;
  h.cmdline_size = s.cmdline_size;
  h.initrd_addr_max = s.initrd_addr_max;
  h.pref_address = s.pref_address;
  h.init_size = s.init_size;
  std::memcpy(img.data() + kSetupHeaderOffset, &h, sizeof h);
  for (size_t i = 0; i < s.payload_size; ++i) img[setup_bytes + i] = std::byte((i & 0xff) ^ 0x5a);
  return img;
}

}  // namespace microvm::testing_images
